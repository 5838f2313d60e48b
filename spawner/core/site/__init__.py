"""The site file (``gpulab.yaml``): validated, with every default filled in, and the facts that
follow from it (state paths, URLs, names). Pure: the only I/O is :func:`load_site` reading the file.

* :mod:`.schema`: the validator toolkit and :class:`ConfigError` (one class for every
  configuration error, naming the key);
* :mod:`.model`: the schema itself (the one place a default is written) and its cross-key checks;
* :mod:`.facts`: what is derived from a validated site (the state directory's files, the hub's
  database URL and public URL, container, unit and image names).
"""

from .model import default, load_site, site_path, validate_site
from .schema import ConfigError

__all__ = ["ConfigError", "default", "load_site", "site_path", "validate_site"]
