# Installed by the jupyterhub role; the same file on every server. What inventory decides
# is data, in settings.json beside this file; formspawner.hubconfig applies it, one small
# function per concern. Admins add their own config through jupyterhub_extra_config
# (inventory) or as *.py files in jupyterhub_config.d/ beside this file, loaded last.
import os

from formspawner import hubconfig

c = get_config()  # noqa: F821 (provided by JupyterHub's config loader)
here = os.path.dirname(os.path.abspath(__file__))
settings = hubconfig.load_settings(os.path.join(here, "settings.json"))
hubconfig.apply(c, settings)
hubconfig.register_metrics(settings)
hubconfig.load_config_files(os.path.join(here, "jupyterhub_config.d"), load_subconfig)  # noqa: F821
# A broken policy stops the hub here, with the setting's name, not at the first spawn.
hubconfig.check(c)
