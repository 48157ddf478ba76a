"""The Microsoft 365 connector: a mailbox's calendar and contacts through Microsoft Graph
(`client` for requests, tokens in `auth`, `events` and `contacts` for the two kinds,
`mapping` between Graph's JSON and canonical items)."""
