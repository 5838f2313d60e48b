"""The spawn form: an HTML fragment JupyterHub embeds in its spawn page."""

from html import escape


def _gib(nbytes):
    return f"{nbytes / 1024**3:g} GiB"


def _limits(profile):
    parts = []
    if profile.get("cpu_limit"):
        parts.append(f"{profile['cpu_limit']:g} CPUs")
    if profile.get("mem_limit"):
        parts.append(f"{_gib(profile['mem_limit'])} RAM")
    if profile.get("shm_size"):
        parts.append(f"{_gib(profile['shm_size'])} /dev/shm")
    parts.append(f"up to {profile['max_gpus']} GPU{'s' if profile['max_gpus'] != 1 else ''}")
    return ", ".join(parts)


def _ago(since, now):
    minutes = int((now - since) // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def render_gpu_table(snapshot, now=None):
    """Live availability: each GPU, its memory, and who holds it (or 'free')."""
    import time

    now = now or time.time()
    if not snapshot or not snapshot["gpus"]:
        return '<p class="text-muted gpulab-gpus">This server has no GPUs to hand out.</p>'
    by_node = any(g.get("node") for g in snapshot["gpus"])
    rows = []
    for g in snapshot["gpus"]:
        node = f"<td>{escape(g.get('node') or '')}</td>" if by_node else ""
        if g["holders"]:
            who = ", ".join(
                f"{escape(h['user'])}{'/' + escape(h['server']) if h['server'] else ''} ({_ago(h['since'], now)})"
                for h in g["holders"]
            )
            state = f"held by {who}" + (
                f"; {g['free_slots']} slot(s) free" if g["free_slots"] > 0 else ""
            )
        else:
            state = "free"
        rows.append(
            f'<tr data-gpu-uuid="{escape(g["uuid"])}" data-free="{g["free_slots"]}">{node}<td>{g["index"]}</td><td>{escape(g["model"])}</td>'
            f"<td>{_gib(g['memory_total'])}</td><td>{state}</td></tr>"
        )
    queue = (
        f"<p class='text-muted'>{len(snapshot['queue'])} spawn(s) waiting for GPUs.</p>"
        if snapshot["queue"]
        else ""
    )
    return (
        f'<table class="table table-sm gpulab-gpus"><thead><tr>{"<th>Node</th>" if by_node else ""}<th>GPU</th><th>Model</th><th>Memory</th><th>Status</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{queue}"
    )


def _chooser(nodes):
    """Specific GPUs on one host; on a Swarm, a GPU server (any by default)."""
    if nodes is None:
        return """<label for="gpulab-gpu-ids" style="margin-top:.5em">Specific GPUs (optional, e.g. <code>0,2</code>)</label>
    <input id="gpulab-gpu-ids" class="form-control" type="text" name="gpu_ids" maxlength="200" value="">"""
    options = "".join(f'<option value="{escape(n)}">{escape(n)}</option>' for n in sorted(nodes))
    return f"""<label for="gpulab-node" style="margin-top:.5em">GPU server</label>
    <select id="gpulab-node" class="form-control" name="node"><option value="" selected>any (the first with free GPUs)</option>{options}</select>"""


def _start_from(saves):
    """The user's saved environments, if any (a save sets its own profile)."""
    if not saves:
        return ""
    options = "".join(
        f'<option value="{escape(s["tag"])}" data-profile="{escape(s["profile"])}">saved {escape(s["tag"])} ({escape(s["profile"])})'
        f"{' – ' + escape(s['note']) if s['note'] else ''}</option>"
        for s in saves
    )
    return f"""
  <div class="form-group" style="margin-top:1em">
    <label for="gpulab-save">Start from</label>
    <select id="gpulab-save" class="form-control" name="save"><option value="" selected>the profile's image (clean; your home is kept)</option>{options}</select>
  </div>"""


def render_form(
    profiles,
    default_profile,
    gpu_snapshot=None,
    unavailable=None,
    nodes=None,
    saves=None,
    limited=None,
):
    """Radio buttons for profiles (an allowlist), a GPU-count field and live GPU availability.

    ``unavailable`` maps profile names to the reason they cannot start now (shown, not selectable).
    ``nodes``: the GPU servers of a Swarm (a node may be chosen instead of specific GPUs).
    ``saves``: the user's saved environments (rows of :func:`gpulab.backends.docker.saves.list_saves`).
    ``limited`` maps profile names to {feature: why it does not work with that image}.
    """
    unavailable = unavailable or {}
    limited = limited or {}
    # no more GPUs than there are: on a server without any, the field allows none
    cap = len(gpu_snapshot["gpus"]) if gpu_snapshot is not None else None

    def most(p):
        return p["max_gpus"] if cap is None else min(p["max_gpus"], cap)

    def usual(p):
        return min(p["gpus"], most(p))

    choosable = [p["name"] for p in profiles if p["name"] not in unavailable]
    if default_profile not in choosable and choosable:
        default_profile = choosable[0]
    rows = []
    for p in profiles:
        checked = (
            " checked" if p["name"] == default_profile and p["name"] not in unavailable else ""
        )
        reason = unavailable.get(p["name"])
        disabled = " disabled" if reason else ""
        note = (
            f'<div class="text-danger small gpulab-unavailable">Unavailable: {escape(reason)}</div>'
            if reason
            else ""
        )
        note += "".join(
            f'<div class="text-warning small gpulab-limited" data-feature="{escape(feature)}">'
            f"{escape(feature)} unavailable with this image: {escape(why)}</div>"
            for feature, why in sorted(limited.get(p["name"], {}).items())
        )
        rows.append(
            f"""
  <label class="gpulab-profile list-group-item{disabled}" style="display:block;cursor:{"not-allowed" if reason else "pointer"}">
    <input type="radio" name="profile" value="{escape(p["name"])}"
           data-default-gpus="{usual(p)}" data-max-gpus="{most(p)}"{checked}{disabled}>
    <strong>{escape(p["display_name"])}</strong>
    <code style="margin-left:.5em">{escape(p["image"])}</code>
    <div class="text-muted">{escape(p["description"])}</div>
    <div class="text-muted small">{escape(_limits(p))}</div>{note}
  </label>"""
        )
    default = next((p for p in profiles if p["name"] == default_profile), profiles[0])
    return f"""
<div class="gpulab-form">
  <h4>Environment</h4>
  <div class="list-group">{"".join(rows)}
  </div>
{_start_from(saves)}
  <div class="form-group" style="margin-top:1em">
    <label for="gpulab-gpus">GPUs</label>
    <input id="gpulab-gpus" class="form-control" type="number" name="gpus"
           min="0" max="{most(default)}" value="{usual(default)}">
    {_chooser(nodes)}
  </div>
  <h4>{"GPUs on this server" if nodes is None else "GPUs in this lab"}</h4>
  {render_gpu_table(gpu_snapshot)}
  <script>
  (function () {{
    var gpus = document.getElementById("gpulab-gpus");
    var save = document.getElementById("gpulab-save");
    if (save) save.addEventListener("change", function () {{
      var chosen = save.selectedOptions[0].dataset.profile;
      var radio = chosen && document.querySelector('.gpulab-profile input[value="' + chosen + '"]');
      if (radio) {{ radio.checked = true; radio.dispatchEvent(new Event("change")); }}
    }});
    document.querySelectorAll(".gpulab-profile input").forEach(function (radio) {{
      radio.addEventListener("change", function () {{
        gpus.max = radio.dataset.maxGpus;
        gpus.value = radio.dataset.defaultGpus;
        // a save runs as the profile it was saved from: another profile means its clean image
        if (save && save.value && save.selectedOptions[0].dataset.profile !== radio.value) save.value = "";
      }});
    }});
  }})();
  </script>
</div>
"""
