"""The checked domain as people write it: `faß.de`, not its DNS form `xn--fa-hia.de`.

What a report says to a person (step titles, messages, fixes, the verdict line, the report's
target) names the checked domain, and the names under it (`autodiscover.faß.de`), in Unicode.
The evidence (a step's details: the names queried, the URLs tried) keeps the ASCII form that
went over the wire. Only the checked domain is turned into Unicode, never another name a server
or DNS gave (an MX host, a redirect): the person typed this one, while a stranger's name in
Unicode could pass for a familiar one (a homograph)."""

from __future__ import annotations

import dataclasses
import functools
import re

import idna

from checksite.checks.model import Step

_LABEL_CHARS = "A-Za-z0-9-"


def domain_for_people(ascii_domain: str) -> str:
    """The Unicode form of an ASCII (A-label) domain; the domain itself when it has none."""
    if "xn--" not in ascii_domain.lower():
        return ascii_domain
    try:
        return idna.decode(ascii_domain, uts46=True)
    except idna.IDNAError:
        return ascii_domain


@functools.cache
def _names_under(ascii_domain: str) -> re.Pattern[str]:
    """`ascii_domain` and any name under it, as a whole name (not a part of a longer one)."""
    return re.compile(
        rf"(?<![{_LABEL_CHARS}.])((?:[{_LABEL_CHARS}]+\.)*){re.escape(ascii_domain)}"
        rf"(?!\.?[{_LABEL_CHARS}])",
        re.IGNORECASE,
    )


def text_for_people(text: str, ascii_domain: str) -> str:
    """`text` with the checked domain and the names under it in Unicode."""
    unicode_domain = domain_for_people(ascii_domain)
    if unicode_domain == ascii_domain or not text:
        return text

    def unicode_name(match: re.Match[str]) -> str:
        return (
            domain_for_people(match.group(1).rstrip("."))
            + ("." if match.group(1) else "")
            + unicode_domain
        )

    return _names_under(ascii_domain).sub(unicode_name, text)


def step_for_people(step: Step, ascii_domain: str) -> Step:
    """The step with its words for people (title, message, fix) in Unicode; details as they were."""
    if domain_for_people(ascii_domain) == ascii_domain:
        return step
    return dataclasses.replace(
        step,
        title=text_for_people(step.title, ascii_domain),
        message=text_for_people(step.message, ascii_domain),
        remediation=text_for_people(step.remediation, ascii_domain),
        children=[step_for_people(child, ascii_domain) for child in step.children],
    )
