"""The Check site's environment checks: one module per check, each yielding `Step`s.

`model` holds the Step/Report shapes, `context` the target and the guarded network access a
check gets, `registry` the ordered list of checks, and `runner` runs them concurrently under
one deadline for the page, the JSON API and the CLI alike.
"""
