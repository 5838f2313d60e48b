"""OpenID Connect login (``auth.type: oidc``): oauthenticator's GenericOAuthenticator, plus a clear
page when the lab's sign-in service is down.

Without it, "Sign in" sends the browser to a provider that does not answer and the user sees
their browser's connection error, with no word of what is wrong. Here the hub first asks the
provider (3 s, with an HTTP client of its own: a busy hub's shared client queue does not delay it,
and a slow provider does not take the hub's places there); if nothing answers, the user gets the
hub's own error page (HTTP 503) naming the service and what to do. The answer is kept for
:data:`CACHE_SECONDS`, so a crowd pressing "Sign in" asks the provider once, not once each.
"""

import time
from urllib.parse import urlparse

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Unicode

from ..core.identity import INFO_KEY, claimed_ids

PROBE_SECONDS = 3.0
CACHE_SECONDS = 10.0
_answers = {}  # origin -> (time asked, problem or None)
_client = None


def _probe_client():
    global _client
    if _client is None:
        _client = AsyncHTTPClient(force_instance=True, max_clients=4)
    return _client


async def provider_problem(url, timeout=PROBE_SECONDS, now=None):
    """None when something answers HTTP at ``url``'s origin (any status); else what went wrong.
    Asked at most once per :data:`CACHE_SECONDS`."""
    u = urlparse(url)
    origin = f"{u.scheme}://{u.netloc}/"
    now = time.monotonic() if now is None else now
    asked = _answers.get(origin)
    if asked and now - asked[0] < CACHE_SECONDS:
        return asked[1]
    problem = await _ask(origin, timeout)
    _answers[origin] = (now, problem)
    return problem


async def _ask(origin, timeout):
    try:
        response = await _probe_client().fetch(
            HTTPRequest(
                origin,
                method="GET",
                connect_timeout=timeout,
                request_timeout=timeout,
                follow_redirects=False,
            ),
            raise_error=False,
        )
    except Exception as e:  # DNS, TLS
        return str(e) or type(e).__name__
    if response.code == 599:
        return str(response.error) if response.error else "no answer"
    return None


class CheckedLoginHandler(OAuthLoginHandler):
    async def get(self):
        url = self.authenticator.authorize_url
        problem = await provider_problem(url)
        if problem:
            host = urlparse(url).netloc
            self.log.warning("gpulab: sign-in service %s is not answering: %s", host, problem)
            raise web.HTTPError(
                503,
                f"The lab's sign-in service ({host}) is not answering, so you cannot log in right now. "
                "Try again in a few minutes; if it stays down, tell your lab's admin.",
            )
        return super().get()


class GPULabOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator with the provider check (configured in the GenericOAuthenticator
    section), keeping the uid and gid the provider names (``users.uid_source: claim``) with the
    user, as of their latest login."""

    login_handler = CheckedLoginHandler

    uid_claim = Unicode(
        "",
        help="""
        The claim with the user's uid (e.g. ``uidNumber``, as a lab's directory has it); empty:
        none kept. Set from the site file's users.uid_claim when users.uid_source is "claim".
        """,
    ).tag(config=True)
    gid_claim = Unicode(
        "",
        help="The claim with the user's primary gid (e.g. ``gidNumber``); empty: users.gid.",
    ).tag(config=True)

    async def authenticate(self, handler, data=None, **kwargs):
        authenticated = await super().authenticate(handler, data, **kwargs)
        if authenticated and self.uid_claim:
            claims = (authenticated.get("auth_state") or {}).get(self.user_auth_state_key) or {}
            found = claimed_ids(claims, self.uid_claim, self.gid_claim)
            if found["uid"] is None:
                self.log.warning(
                    "gpulab: %s logged in without a valid %s claim: they cannot start a server",
                    authenticated.get("name"),
                    self.uid_claim,
                )
            authenticated["user_info"] = {
                **(authenticated.get("user_info") or {}),
                INFO_KEY: found,
            }
        return authenticated
