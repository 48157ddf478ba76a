"""SuperOffice CRM simulator (Online with SuperID, and Onsite): see `app.create_app`."""

from simulators.superoffice.app import Simulator, create_app, reset

__all__ = ["Simulator", "create_app", "reset"]
