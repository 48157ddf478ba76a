"""Exchange on-premises (2013 / 2016 / 2019) simulator: EWS SOAP, Autodiscover (POX, SOAP, HTTP
redirect, DNS SRV), NTLM and Basic authentication, and a NetScaler-style login page."""

from .app import ExchangeSimulator, create_app

__all__ = ["ExchangeSimulator", "create_app"]
