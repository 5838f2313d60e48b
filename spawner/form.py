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


def render_form(profiles, default_profile):
    """Radio buttons for profiles (an allowlist) and a GPU-count field."""
    rows = []
    for p in profiles:
        checked = " checked" if p["name"] == default_profile else ""
        rows.append(
            f"""
  <label class="gpulab-profile list-group-item" style="display:block;cursor:pointer">
    <input type="radio" name="profile" value="{escape(p['name'])}"
           data-default-gpus="{p['gpus']}" data-max-gpus="{p['max_gpus']}"{checked}>
    <strong>{escape(p['display_name'])}</strong>
    <code style="margin-left:.5em">{escape(p['image'])}</code>
    <div class="text-muted">{escape(p['description'])}</div>
    <div class="text-muted small">{escape(_limits(p))}</div>
  </label>"""
        )
    default = next(p for p in profiles if p["name"] == default_profile)
    return f"""
<div class="gpulab-form">
  <h4>Environment</h4>
  <div class="list-group">{''.join(rows)}
  </div>
  <div class="form-group" style="margin-top:1em">
    <label for="gpulab-gpus">GPUs</label>
    <input id="gpulab-gpus" class="form-control" type="number" name="gpus"
           min="0" max="{default['max_gpus']}" value="{default['gpus']}">
  </div>
  <script>
  (function () {{
    var gpus = document.getElementById("gpulab-gpus");
    document.querySelectorAll(".gpulab-profile input").forEach(function (radio) {{
      radio.addEventListener("change", function () {{
        gpus.max = radio.dataset.maxGpus;
        gpus.value = radio.dataset.defaultGpus;
      }});
    }});
  }})();
  </script>
</div>
"""
