"""The hub's own pages and APIs: GPUs (`/hub/gpus`), saved environments (`/hub/environments`), home backups (the environments page), SSH (`/hub/ssh`)."""
