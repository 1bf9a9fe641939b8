# /etc/etrepo/config.py: the deployment's settings. Every setting and its default is listed in
# the README; `etrepo config` shows what is in force. ETREPO_<NAME> variables override this file.
# Secrets (SECRET_KEY, SMTP_PASSWORD, DATABASE_URL with its password) belong in
# /etc/etrepo/secrets.env (see deploy/secrets.env.example), not here.

SITE_NAME = "ETRepo"
HOSTNAME = "et-repo.example.org"
BASE_URL = "https://et-repo.example.org"
TRUSTED_PROXIES = 1  # nginx

JUPYTERHUB_URL = "https://et-repo.example.org/hub/"
DOCS_URL = "https://et-repo.example.org/docs/"
CONTACTS_URL = "https://et-repo.example.org/docs/contacts/"

# DATABASE_URL: in secrets.env, as it holds a password. PostgreSQL over TCP with a password,
# not the local socket's peer authentication, which lets only the OS user etrepo in: the
# worker runs as root.

SMTP_HOST = "smtp.example.org"
SMTP_PORT = 587
SMTP_SECURITY = "starttls"
SMTP_USER = "et-repo"
MAIL_FROM = "ETRepo <no-reply@et-repo.example.org>"
HELPDESK_EMAIL = "et-repo-help@example.org"

PROVISIONER = "linux"
HOME_BASE = "/home"
WORK_BASE = "/work"
USER_GROUPS = "etusers"
USER_SHELL = "/bin/bash"
