"""How gpulab's modules add pages to the hub: their handlers, gpulab's templates (the top bar's
links) and template variables, each added to what the configuration already holds."""

import os

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def configured(section, name, default):
    """A list/dict already set in this config (e.g. by another gpulab module), else ``default``."""
    return section[name] if name in section else default  # noqa: SIM401 (traitlets Config)


def add_pages(c, handlers=(), template_vars=None):
    hub = c.JupyterHub
    hub.extra_handlers = list(configured(hub, "extra_handlers", [])) + list(handlers)
    paths = list(configured(hub, "template_paths", []))
    hub.template_paths = paths if TEMPLATES in paths else [TEMPLATES, *paths]
    hub.template_vars = {**configured(hub, "template_vars", {}), **(template_vars or {})}
