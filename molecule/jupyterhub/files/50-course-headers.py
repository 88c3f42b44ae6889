# An admin's own config file (jupyterhub_extra_config_files): loaded after the role's settings.
c = get_config()  # noqa: F821
c.JupyterHub.tornado_settings = {"headers": {"X-Course-Hub": "from-jupyterhub-config-d"}}
