"""The hub process: JupyterHub plus gpulab (the app, the spawner base and its settings, the
deployment, configuration from the site file, pages and APIs, logins, the GPU service)."""
