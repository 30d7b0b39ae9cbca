"""Over-the-air updates of the hub: signed releases (TUF), incremental verified downloads, A/B slots.

This package never imports `hub.*`: the publisher runs on a build machine and the client may run before the
hub is up. The hub-side service lives in `hub/updates/`.
"""
