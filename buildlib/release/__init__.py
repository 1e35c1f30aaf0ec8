"""Stage 6, release: what makes a build repeatable elsewhere.

Takes a spec and the store and gives a lock (every image digest and .deb pinned) and the checks of a
store against it. Imports the stages before it; never `guest`, `tasks` or `cli` (`tasks.verify`
rebuilds a release, since rebuilding is a task run).
"""
