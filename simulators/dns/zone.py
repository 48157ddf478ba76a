"""The simulated DNS data and how a query is answered from it.

The server plays the recursive resolver our product is pointed at: it follows CNAME chains
inside its data and says NXDOMAIN for everything it does not know.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

DEFAULT_TTL = 300
MAX_CNAME_CHAIN = 8
FAILURE_MODES = ("servfail", "refused", "timeout")

Record = tuple[str, str, str]


@dataclass
class Answer:
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    authoritative: bool = True
    silent: bool = False  # the "timeout" failure: no reply at all


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text.rstrip(".") + ".")


def zone_of(name: dns.name.Name) -> dns.name.Name:
    """The zone a record's owner name belongs to: its last two labels (contoso.example)."""
    labels = name.labels[-3:] if len(name.labels) >= 3 else name.labels
    return dns.name.Name(labels)


class ZoneData:
    """Resource records by (owner, type); thread-safe, updatable while the server runs."""

    def __init__(self, records: Iterable[Record] = (), ttl: int = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._rrsets: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        self._names: set[dns.name.Name] = set()
        self._zones: set[dns.name.Name] = set()
        self._failures: dict[dns.name.Name, str] = {}
        self._lock = threading.Lock()
        self.add(records)

    def add(self, records: Iterable[Record]) -> None:
        """Add (name, rtype, value) records; `value` is zone-file text. Duplicates are merged."""
        with self._lock:
            for owner, rtype, value in records:
                self._add_one(_name(owner), dns.rdatatype.from_text(rtype.upper()), value)

    def set_failure(self, owner: str, mode: str | None) -> None:
        """Make queries for `owner` fail ("servfail", "refused", "timeout"); None restores it."""
        if mode is not None and mode not in FAILURE_MODES:
            raise ValueError(f"unknown failure mode {mode!r}; known: {FAILURE_MODES}")
        with self._lock:
            if mode is None:
                self._failures.pop(_name(owner), None)
            else:
                self._failures[_name(owner)] = mode

    def records(self) -> list[Record]:
        with self._lock:
            return [
                (rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
                for rrset in self._rrsets.values()
                for rdata in rrset
            ]

    def _add_one(self, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType, value: str) -> None:
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
        )
        key = (owner, rdtype)
        if key not in self._rrsets:
            self._rrsets[key] = dns.rrset.RRset(owner, dns.rdataclass.IN, rdtype)
        self._rrsets[key].add(rdata, self.ttl)
        zone = zone_of(owner)
        if zone not in self._zones:
            self._zones.add(zone)
            self._names.add(zone)
        # Every name between the owner and its zone exists (empty non-terminals: _tcp.x.example).
        name = owner
        while name != zone and len(name) > len(zone):
            self._names.add(name)
            name = name.parent()

    def answer(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Answer:
        with self._lock:
            failure = self._failures.get(qname)
            if failure == "timeout":
                return Answer(silent=True)
            if failure is not None:
                rcode = dns.rcode.SERVFAIL if failure == "servfail" else dns.rcode.REFUSED
                return Answer(rcode=rcode, authoritative=False)
            return self._resolve(qname, qtype)

    def _resolve(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Answer:
        result = Answer()
        current = qname
        for _ in range(MAX_CNAME_CHAIN):
            if qtype == dns.rdatatype.ANY and current in self._names:
                result.answer += [r for (n, _t), r in self._rrsets.items() if n == current]
                return result
            rrset = self._rrset(current, qtype)
            if rrset is not None:
                result.answer.append(rrset)
                return result
            cname = self._rrsets.get((current, dns.rdatatype.CNAME))
            if cname is None or qtype == dns.rdatatype.CNAME:
                break
            result.answer.append(cname)
            current = cname[0].target
        if current not in self._names:
            result.rcode = dns.rcode.NXDOMAIN
        soa = self._soa(zone_of(current)) if zone_of(current) in self._zones else None
        if soa is not None:
            result.authority.append(soa)
        else:
            result.authoritative = False
        return result

    def _rrset(
        self, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.rrset.RRset | None:
        rrset = self._rrsets.get((owner, rdtype))
        if rrset is None and owner in self._zones and rdtype == dns.rdatatype.SOA:
            rrset = self._soa(owner)
        if rrset is None and owner in self._zones and rdtype == dns.rdatatype.NS:
            rrset = self._synthesised(owner, dns.rdatatype.NS, f"ns1.{owner}")
        return rrset

    def _soa(self, zone: dns.name.Name) -> dns.rrset.RRset:
        given = self._rrsets.get((zone, dns.rdatatype.SOA))
        if given is not None:
            return given
        value = f"ns1.{zone} hostmaster.{zone} 1 3600 600 86400 {self.ttl}"
        return self._synthesised(zone, dns.rdatatype.SOA, value)

    def _synthesised(
        self, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType, value: str
    ) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, rdtype)
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
        )
        rrset.add(rdata, self.ttl)
        return rrset
