// Gets one access token with the real @azure/identity, the way applications do.
//
//     node sdk_token.js CREDENTIAL SCOPE
//
// CREDENTIAL is one of
//   workload   new WorkloadIdentityCredential({ disableInstanceDiscovery: true }),
//              otherwise configured by the environment (AZURE_CLIENT_ID,
//              AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST).
//              msal-node asks https://login.microsoftonline.com/common/discovery/instance
//              about any authority host it does not know (such as the fake's)
//              unless instance discovery is disabled.
//   managed    new ManagedIdentityCredential({ clientId: $AZURE_CLIENT_ID })
//              (IMDS at $AZURE_POD_IDENTITY_AUTHORITY_HOST)
//
// Prints one JSON object on stdout: {"credential", "token", "expires_on"} (seconds).
// The token is for the caller (tests/e2e/sdk_test.go), which never logs it. On
// failure: the error's name and message on stderr, exit status 1.
"use strict";

const identity = require("@azure/identity");

function credentialFor(name) {
  switch (name) {
    case "workload":
      return new identity.WorkloadIdentityCredential({ disableInstanceDiscovery: true });
    case "managed":
      return new identity.ManagedIdentityCredential({ clientId: process.env.AZURE_CLIENT_ID });
    default:
      throw new Error(`unknown credential ${name}`);
  }
}

async function main() {
  const [name, scope] = process.argv.slice(2);
  if (!name || !scope) throw new Error("usage: node sdk_token.js CREDENTIAL SCOPE");
  const cred = credentialFor(name);
  const tok = await cred.getToken(scope);
  if (!tok) throw new Error("getToken returned no token");
  process.stdout.write(JSON.stringify({
    credential: cred.constructor.name,
    token: tok.token,
    expires_on: Math.floor(tok.expiresOnTimestamp / 1000),
  }) + "\n");
}

main().catch((e) => {
  process.stderr.write(`${e && e.name}: ${e && e.message}\n`);
  process.exit(1);
});
