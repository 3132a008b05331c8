"""Gets one access token with the real azure-identity, the way applications do.

    sdk_token.py CREDENTIAL SCOPE

CREDENTIAL is one of
  workload     azure.identity.WorkloadIdentityCredential(), configured by the
               environment alone (AZURE_CLIENT_ID, AZURE_TENANT_ID,
               AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST)
  default      azure.identity.DefaultAzureCredential(), environment alone
  default-aio  azure.identity.aio.DefaultAzureCredential(), environment alone:
               what prefect-azure builds (ADefaultAzureCredential())
  managed      azure.identity.ManagedIdentityCredential(client_id=$AZURE_CLIENT_ID)
               (IMDS at $AZURE_POD_IDENTITY_AUTHORITY_HOST)
  managed-aio  the same from azure.identity.aio

Prints one JSON object on stdout: {"credential", "token", "expires_on"}. The
token is for the caller (tests/e2e/sdk_test.go), which never logs it. On
failure: the exception's type and message on stderr, exit status 1.
"""

import asyncio
import json
import os
import sys


def sync_token(credential, scope):
    import azure.identity as ai

    client_id = os.environ.get("AZURE_CLIENT_ID")
    if credential == "workload":
        cred = ai.WorkloadIdentityCredential()
    elif credential == "default":
        cred = ai.DefaultAzureCredential()
    elif credential == "managed":
        cred = ai.ManagedIdentityCredential(client_id=client_id)
    else:
        raise SystemExit("unknown credential " + credential)
    with cred:
        return type(cred).__name__, cred.get_token(scope)


async def aio_token(credential, scope):
    import azure.identity.aio as aio

    if credential == "default-aio":
        cred = aio.DefaultAzureCredential()
    elif credential == "managed-aio":
        cred = aio.ManagedIdentityCredential(client_id=os.environ.get("AZURE_CLIENT_ID"))
    else:
        raise SystemExit("unknown credential " + credential)
    async with cred:
        return "aio." + type(cred).__name__, await cred.get_token(scope)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    credential, scope = sys.argv[1:]
    try:
        if credential.endswith("-aio"):
            name, tok = asyncio.run(aio_token(credential, scope))
        else:
            name, tok = sync_token(credential, scope)
    except Exception as e:  # report any SDK failure the same way
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    json.dump({"credential": name, "token": tok.token, "expires_on": tok.expires_on}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
