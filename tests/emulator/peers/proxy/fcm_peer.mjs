// A Node program on its standard library only: it gets a Google access token
// for a service account and sends one FCM message, as a Node backend would.
// Node's https does not read HTTPS_PROXY, so this program opens the tunnel
// itself (an HTTP CONNECT with the http module) and runs TLS over it; it trusts
// the emulator's CA through NODE_EXTRA_CA_CERTS, which Node reads at start.
//
// Usage: node fcm_peer.mjs <service-account.json> <device token>
// Prints one JSON object: the token exchange's and the send's status, the
// message name, and the error of a CONNECT to another host.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import tls from "node:tls";

const proxy = new URL(process.env.HTTPS_PROXY);

function tunnel(host) {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: proxy.hostname, port: proxy.port, method: "CONNECT", path: `${host}:443` });
    request.on("connect", (response, socket) => {
      if (response.statusCode === 200) resolve(socket);
      else { socket.destroy(); reject(new Error(`proxy answered ${response.statusCode}`)); }
    });
    request.on("error", reject);
    request.setTimeout(20000, () => request.destroy(new Error("proxy timeout")));
    request.end();
  });
}

async function post(host, path, headers, body) {
  const socket = await tunnel(host);
  return new Promise((resolve, reject) => {
    const request = https.request(
      {
        host, path, method: "POST",
        headers: { ...headers, "content-length": Buffer.byteLength(body) },
        // With no agent, https uses this for the connection: TLS over the tunnel.
        createConnection: () => tls.connect({ socket, servername: host }),
      },
      (response) => {
        let data = "";
        response.on("data", (chunk) => (data += chunk));
        response.on("end", () => resolve({ status: response.statusCode, body: data }));
      },
    );
    request.on("error", reject);
    request.setTimeout(20000, () => request.destroy(new Error("timeout")));
    request.end(body);
  });
}

const b64url = (data) => Buffer.from(data).toString("base64url");
const [accountFile, deviceToken] = process.argv.slice(2);
const account = JSON.parse(fs.readFileSync(accountFile, "utf8"));
const now = Math.floor(Date.now() / 1000);
const unsigned = b64url(JSON.stringify({ alg: "RS256", typ: "JWT" })) + "." + b64url(JSON.stringify({
  iss: account.client_email, aud: account.token_uri, iat: now, exp: now + 3600,
  scope: "https://www.googleapis.com/auth/firebase.messaging",
}));
const assertion = unsigned + "." + b64url(crypto.sign("RSA-SHA256", Buffer.from(unsigned), account.private_key));
const tokenUri = new URL(account.token_uri);
const form = new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion }).toString();
const grant = await post(tokenUri.hostname, tokenUri.pathname, { "content-type": "application/x-www-form-urlencoded" }, form);
const out = { token_status: grant.status };
const accessToken = JSON.parse(grant.body).access_token;
const message = { message: { token: deviceToken, notification: { title: "Hello from Node", body: "https + CONNECT" } } };
const sent = await post("fcm.googleapis.com", `/v1/projects/${account.project_id}/messages:send`,
  { authorization: `Bearer ${accessToken}`, "content-type": "application/json" }, JSON.stringify(message));
out.send_status = sent.status;
out.name = JSON.parse(sent.body).name;
try { await tunnel("example.com"); out.other = "tunnel opened"; } catch (error) { out.other_error = error.message; }
console.log(JSON.stringify(out));
