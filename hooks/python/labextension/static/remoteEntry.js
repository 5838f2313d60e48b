/* gpulab-notices: a JupyterLab 4 / Notebook 7 federated extension written by hand (it imports
 * nothing, so it needs no build): a container with init() and get("./extension"), as JupyterLab's
 * loader expects. Every 15 s it asks its own server (gpulab_hooks.notices) whether the hub warned
 * that this server's GPUs will be reclaimed, and shows the warning as a notification with a
 * "Keep my GPUs" action, which opens the hub's GPU page: keeping is the user's own act there
 * (the commands apputils:notify / apputils:dismiss-notification are JupyterLab's own). */
(function () {
  "use strict";
  var POLL_MS = 15000;
  function cookie(name) {
    var m = document.cookie.match("\\b" + name + "=([^;]*)\\b");
    return m ? decodeURIComponent(m[1]) : undefined;
  }
  function headers(settings) {
    // cookie-authenticated requests to a JupyterHub single-user server carry the XSRF token,
    // GETs included (as JupyterLab's own ServerConnection does)
    var h = { "Content-Type": "application/json" };
    var xsrf = cookie("_xsrf");
    if (xsrf) h["X-XSRFToken"] = xsrf;
    if (settings.token) h["Authorization"] = "token " + settings.token;
    return h;
  }
  function hubPage(page) {
    // JupyterHub puts its prefix (and, with per-user subdomains, its host) in the page config
    var el = document.getElementById("jupyter-config-data");
    var config = el ? JSON.parse(el.textContent || "{}") : {};
    return (config.hubHost || "") + (config.hubPrefix || "/hub/").replace(/\/?$/, "/") + page;
  }
  var plugin = {
    id: "gpulab-notices:plugin",
    description: "Shows gpulab's GPU reclaim warnings",
    autoStart: true,
    activate: function (app) {
      var settings = app.serviceManager.serverSettings;
      var base = settings.baseUrl.replace(/\/?$/, "/");
      var shown = null; // [warned_at, notification id]
      app.commands.addCommand("gpulab:keep", {
        label: "Keep my GPUs",
        execute: function () {
          if (shown) app.commands.execute("apputils:dismiss-notification", { id: shown[1] });
          window.open(hubPage("gpus"), "_blank");
        }
      });
      function poll() {
        fetch(base + "gpulab/notices", { headers: headers(settings), credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (body) {
            var notice = body && body.notice;
            if (!notice) {
              if (shown) app.commands.execute("apputils:dismiss-notification", { id: shown[1] });
              shown = null;
              return;
            }
            if (shown && shown[0] === notice.warned_at) return;
            if (shown) app.commands.execute("apputils:dismiss-notification", { id: shown[1] });
            var actions = notice.reason === "idle" ? [{ label: "Keep my GPUs", commandId: "gpulab:keep", displayType: "accent" }] : [];
            Promise.resolve(app.commands.execute("apputils:notify", {
              message: body.message, type: "warning", options: { autoClose: false, actions: actions }
            })).then(function (id) { shown = [notice.warned_at, id]; });
          })
          .catch(function () {});
      }
      app.restored.then(function () { poll(); setInterval(poll, POLL_MS); });
    }
  };
  var container = {
    init: function () { return Promise.resolve(); },
    get: function (module) {
      if (module === "./extension") {
        return Promise.resolve(function () { return { __esModule: true, "default": [plugin] }; });
      }
      return Promise.reject(new Error("gpulab-notices has no module " + module));
    }
  };
  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB["gpulab-notices"] = container;
})();
