"""Admin tooling (the ``gpulab`` command), run by an admin on the hub's host or a GPU server: one
registry of subcommands (:mod:`.cli`), the hub's host (:mod:`.hubcmds`), images, systemd, the hub's
state backup, a Swarm node's setup."""
