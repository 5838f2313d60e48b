"""What every part of gpulab shares, pure: no Docker, no hub, no network, no database.

The container contract (:mod:`.contract`), the spawn and job specs (:mod:`.spec`, :mod:`.job`),
spawn options (:mod:`.options`), the site file (:mod:`.site`), GPUs (:mod:`.gpus`: allocator,
reclaim policy, inventory, readings, usage arithmetic), the start gate, saved-environment rules
(:mod:`.saves`) and SSH keys (:mod:`.ssh`). Everything here is tested without Docker or a hub.
Nothing here imports from the layers above it (backends, hub, admin, agents); a unit test keeps it so.
"""
