"""Push: what a service's notification sets going in the daemon.

`triggers(settings)` is what the composition root hands the web app (`common.push`): the
queue and the daemon's runtime set up in the web process, and `request_sync`, which queues a
coalesced sync of one user's kind unless the profile does not sync that kind (a SuperOffice
webhook announces persons to every profile, whether it syncs contacts or not).
"""

from __future__ import annotations

from common.config import Settings
from common.kinds import ItemKind
from common.models import Profile, SyncUser
from common.push import PushTriggers
from daemon import queue, tasks
from daemon.policies import Policy


def triggers(settings: Settings) -> PushTriggers:
    """The push triggers of a web process (the queue and the database of `settings`)."""
    queue.configure(settings.queue_url)
    tasks.configure(settings)
    return PushTriggers(enqueue_sync=request_sync)


def request_sync(user_id: int, kind: ItemKind) -> bool:
    """Queue a sync of the user's `kind` now, coalesced; False when one waits already or
    the profile does not sync that kind."""
    with tasks.runtime().db.session() as session:
        user = session.get(SyncUser, user_id)
        profile = session.get(Profile, user.profile_id) if user is not None else None
        if profile is None:
            return False
        synced = tasks.kinds_of(Policy.from_settings(profile.settings or {}))
    return kind in synced and tasks.enqueue_sync(user_id, kind)
