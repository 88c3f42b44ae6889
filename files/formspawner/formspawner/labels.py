"""Names formspawner puts on Docker objects, in one place.

The images role (roles/images/vars/main.yml: _images_build_label) and the metrics read
them too; tests/unit/test_labels.py keeps the role's copy equal to these.
"""

# The fingerprint of the options a user's container was started with.
OPTIONS_LABEL = "org.formspawner.options"
# Whose container it is (the host's figures count containers per user: metrics.py).
USER_LABEL = "org.formspawner.user"
# On repository builds: REPO_LABEL=1, and REPO_LABEL.{url,commit,base,key,build}.
REPO_LABEL = "org.formspawner.repo"
# The image repository repository builds are tagged in.
IMAGE_REPOSITORY = "formspawner-repo"
