"""OpenID Connect login (``auth.type: oidc``): oauthenticator's GenericOAuthenticator, plus a clear
page when the lab's sign-in service is down.

Without it, "Sign in" sends the browser to a provider that does not answer and the user sees
their browser's connection error, with no word of what is wrong. Here the hub first asks the
provider (3 s); if nothing answers, the user gets the hub's own error page (HTTP 503) naming the
service and what to do.
"""

from urllib.parse import urlparse

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

PROBE_SECONDS = 3.0


async def provider_problem(url, timeout=PROBE_SECONDS):
    """None when something answers HTTP at ``url``'s origin (any status); else what went wrong."""
    u = urlparse(url)
    origin = f"{u.scheme}://{u.netloc}/"
    try:
        response = await AsyncHTTPClient().fetch(
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
    """GenericOAuthenticator with the provider check (configured in the GenericOAuthenticator section)."""

    login_handler = CheckedLoginHandler
