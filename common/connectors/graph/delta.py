"""Delta passes over a Graph collection, and the cursors the engine keeps for them.

A cursor is Graph's own link (`@odata.nextLink` within a pass, `@odata.deltaLink` after it),
which Graph keeps server-side: a page read again later starts where it was, whatever changed
meanwhile, and the delta after a full pass starts where that pass started. The cursor also
carries the window of the pass (a calendar view is read for one window) and the series
already given in this pass, so a series whose occurrences fall on several pages is listed
once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from common.connectors.base import CursorExpired
from common.kinds import Window

_VERSION = 1


@dataclass(frozen=True, slots=True)
class Pass:
    link: str
    full: bool = False
    window: Window | None = None
    series: tuple[str, ...] = field(default_factory=tuple)

    def encode(self) -> str:
        data: dict[str, Any] = {"v": _VERSION, "link": self.link, "full": self.full}
        if self.window is not None:
            data["window"] = [self.window.start.isoformat(), self.window.end.isoformat()]
        if self.series:
            data["series"] = list(self.series)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, cursor: str) -> Pass:
        """A cursor we made; anything else is expired (listed afresh), never guessed at."""
        try:
            data = json.loads(cursor)
            if not isinstance(data, dict) or data.get("v") != _VERSION:
                raise ValueError("not a Graph delta cursor")
            window = data.get("window")
            return cls(
                link=str(data["link"]),
                full=bool(data.get("full", False)),
                window=(
                    Window(datetime.fromisoformat(window[0]), datetime.fromisoformat(window[1]))
                    if window
                    else None
                ),
                series=tuple(str(s) for s in data.get("series") or ()),
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise CursorExpired(f"not a cursor of this connector: {exc}") from exc

    def after(self, page: Mapping[str, Any], series: Sequence[str] = ()) -> tuple[Pass, bool]:
        """The cursor after `page`, and whether more pages follow in this pass."""
        next_link = page.get("@odata.nextLink")
        if next_link:
            seen = tuple(dict.fromkeys([*self.series, *series]))
            return Pass(str(next_link), self.full, self.window, seen), True
        delta_link = page.get("@odata.deltaLink")
        if not delta_link:
            raise CursorExpired("Graph answered a delta page without a next or delta link")
        return Pass(str(delta_link), False, self.window), False


def query(**params: str) -> str:
    """A query string with Graph's OData parameters (`dollar_filter` is `$filter`), values
    percent-encoded as a part URL of `$batch` needs them."""
    pairs = [
        f"{name.replace('dollar_', '$')}={quote(value, safe=chr(39) + '$(),:=/')}"
        for name, value in params.items()
    ]
    return "?" + "&".join(pairs)


def item_path(item_id: str) -> str:
    return quote(item_id, safe="-_=")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
