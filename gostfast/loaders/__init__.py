"""GOST's loaders for named lists: entries read from a file, Redis or an HTTP URL,
read again every ``reload`` period, applied to new connections as they change.

The interface (live.py): ``LiveLists.from_config(cfg)`` finds every named list
with a loader; ``await lists.load_all()`` reads them once; ``lists.current(cfg)``
is a list's config as last loaded (the config's own entries, then the loaded
ones); ``lists.follow(section, cfgs, part, rebuild)`` calls ``rebuild(part, current
configs)`` each time one of them changes, while ``part`` lives; ``lists.start()`` polls, ``await lists.close()`` stops.
The runtime parts (Bypass, Admission, HostMapper, Users, the limiters) rebuild
their tables in place, so open tunnels keep what they hold and new ones see the
new lists. ``LiveList.set_base`` replaces a list's own entries (for the web API).
"""
