"""Client keys of the lab's gateway, for LiteLLM's proxy without a database.

Loaded by LiteLLM from ``general_settings.custom_auth: keyauth.user_api_key_auth``, a
module path resolved beside the config file (litellm/proxy/types_utils/utils.py,
get_instance_fn). Once custom_auth is set LiteLLM checks no key itself
(litellm/proxy/auth/user_api_key_auth.py), so this accepts the master key
($LITELLM_MASTER_KEY) as the proxy's admin and the client keys of the JSON object in
$LITELLM_CLIENT_KEYS_FILE ({"key": "client name"}) as users, re-read when the file
changes. Anything else is refused with an HTTPException(401), which LiteLLM's auth error
handler turns into a 401 (litellm/proxy/auth/auth_exception_handler.py); a plain
exception would become a 500 there. Written by the gateway role; do not edit.
"""

import json
import os
import secrets

from fastapi import HTTPException, Request, status
from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

_CACHE = {"mtime": None, "keys": {}}


def _client_keys():
    path = os.environ.get("LITELLM_CLIENT_KEYS_FILE", "")
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return {}
    if _CACHE["mtime"] != mtime:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        _CACHE.update(mtime=mtime, keys={str(k): str(v) for k, v in data.items()})
    return _CACHE["keys"]


def _same(a, b):
    return secrets.compare_digest(a.encode(), b.encode())


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if api_key:
        master = os.environ.get("LITELLM_MASTER_KEY", "")
        if master and _same(api_key, master):
            return UserAPIKeyAuth(api_key=api_key, user_id="admin", user_role=LitellmUserRoles.PROXY_ADMIN)
        for key, client in _client_keys().items():
            if _same(api_key, key):
                return UserAPIKeyAuth(
                    api_key=api_key,
                    key_alias=client,
                    user_id=client,
                    user_role=LitellmUserRoles.INTERNAL_USER,
                )
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail={"error": "invalid or missing API key"}
    )
