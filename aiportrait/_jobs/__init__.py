"""Jobs: the ``async for`` watcher, its poll schedule, and learned job durations."""
