"""Stopping batches gracefully: :class:`BatchStop`, given as ``stop=`` to
:meth:`Session.create_many <aiportrait.Session.create_many>` and
:meth:`~aiportrait.Session.train_many`.

::

    import signal
    from aiportrait.batches import BatchStop

    stop = BatchStop()
    signal.signal(signal.SIGTERM, lambda *_: stop.stop())  # nothing new is sent; in flight: saved
    async for outcome in session.create_many(requests, journal="batch.sqlite", stop=stop):
        ...

:data:`DEFAULT_GRACE` is how long the calls in flight get by default; :data:`REPEATING` the
errors that stop a batch on their own (they would fail every item).
"""

from ._batches.stop import DEFAULT_GRACE, REPEATING, BatchStop

__all__ = ["DEFAULT_GRACE", "REPEATING", "BatchStop"]
