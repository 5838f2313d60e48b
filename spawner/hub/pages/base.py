"""What gpulab's pages share: how they are added to the hub (their handlers, gpulab's templates
with the top bar's links, template variables, each added to what the configuration already holds),
the deployment they serve (:func:`lab_of`), and who an API call may act for (:func:`scoped_user`)."""

import os

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")


def configured(section, name, default):
    """A list/dict already set in this config (e.g. by another gpulab module), else ``default``."""
    return section[name] if name in section else default  # noqa: SIM401 (traitlets Config)


def lab_of(handler):
    """The hub's :class:`~gpulab.hub.deployment.Deployment` (503 before the hub has one)."""
    from tornado import web

    lab = handler.settings.get("gpulab")
    if lab is None:
        raise web.HTTPError(503, "gpulab is not running in this hub (start it with gpulab up)")
    return lab


def scoped_user(handler, scope, user_name, admins=False):
    """The user an API call about ``user_name`` may act for: the token's own user when the token
    carries ``scope`` for them, or (``admins``) any user for a token with ``admin:servers`` on
    them. 404 for other users (nothing about them, not even that they exist), 403 naming the
    scope a user's own token lacks."""
    from jupyterhub.user import User
    from tornado import web

    if admins and handler.has_scope(f"admin:servers!user={user_name}"):
        found = handler.find_user(user_name)
        if found is None:
            raise web.HTTPError(404)
        return found
    user = handler.current_user
    if not isinstance(user, User) or user.name != user_name:
        raise web.HTTPError(404)
    if not handler.has_scope(f"{scope}!user={user.name}"):
        raise web.HTTPError(403, f"this token lacks the scope {scope}")
    return user


def add_pages(c, handlers=(), template_vars=None):
    hub = c.JupyterHub
    hub.extra_handlers = list(configured(hub, "extra_handlers", [])) + list(handlers)
    paths = list(configured(hub, "template_paths", []))
    hub.template_paths = paths if TEMPLATES in paths else [TEMPLATES, *paths]
    hub.template_vars = {**configured(hub, "template_vars", {}), **(template_vars or {})}
