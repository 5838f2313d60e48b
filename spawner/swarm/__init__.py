"""Multi-host gpulab on Docker Swarm: node setup, the service form of the container spec, the cluster view."""
