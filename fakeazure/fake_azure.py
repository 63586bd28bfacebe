#!/usr/bin/env python3
"""A fake Azure for tests and benchmarks: Entra ID and managed identity token endpoints, the
ARM reads vmssd makes, and a control API under /_fake/. Standard library only; binds 127.0.0.1.

Run: python3 fakeazure/fake_azure.py --port 0 --inventory inv.json [--page-size N] [--port-file F]
The inventory format and the control API are described in fakeazure/README.md.
"""
import argparse
import email.utils
import json
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit, quote

COMPUTE_API = "2024-07-01"
VMSS_NIC_API = "2018-10-01"
NETWORK_API = "2024-05-01"
IMDS_API = "2018-02-01"
RATE_RESOURCE = "Microsoft.Compute/HighCostGet3Min;107,Microsoft.Compute/HighCostGet30Min;527"
OPERATIONS = ["list_vmss_vms", "get_vm", "list_vmss", "list_vmss_vm_nics", "get_nic",
              "token_aad", "token_imds"]


def base36(number, width=6):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            break
    return text.rjust(width, "0")


class State:
    """Everything the fake knows, guarded by one lock. Keys are lower-cased; display names kept."""

    def __init__(self, inventory, page_size):
        self.lock = threading.Lock()
        self.page_size = page_size
        self.token_lifetime = int(inventory.get("tokenLifetimeSeconds", 3600))
        self.credentials = inventory.get("credentials", {})
        self.tokens = {}  # token -> expiry (epoch seconds)
        self.faults = []
        self.counts = {op: 0 for op in OPERATIONS}
        self.reads_remaining = 12000
        self.subscriptions = {}
        self.page_cache = {}
        for sub_id, sub in inventory.get("subscriptions", {}).items():
            groups = {}
            for rg_name, rg in sub.get("resourceGroups", {}).items():
                group = {"name": rg_name, "location": rg.get("location", "westeurope"),
                         "scaleSets": {}, "vms": {}}
                for ss in rg.get("scaleSets", []):
                    self._add_scale_set(sub_id, group, ss)
                for vm in rg.get("virtualMachines", []):
                    self._add_vm(sub_id, group, vm)
                groups[rg_name.lower()] = group
            self.subscriptions[sub_id.lower()] = {"id": sub_id, "groups": groups}

    # -- inventory ----------------------------------------------------------------------------

    def _add_scale_set(self, sub_id, group, spec):
        name = spec["name"]
        prefix = spec.get("computerNamePrefix", name)
        ss = {"name": name, "mode": spec.get("orchestrationMode", "Uniform"), "prefix": prefix,
              "sku": spec.get("sku", "Standard_D4s_v5"), "zones": spec.get("zones", []),
              "location": spec.get("location", group["location"]), "vms": {}, "version": 0,
              "deleting": None, "subnet": spec.get("subnet", "10.240")}
        explicit = spec.get("vms")
        if explicit is None:
            explicit = [{"instanceId": str(i)} for i in range(int(spec.get("capacity", 0)))]
        for vm in explicit:
            iid = str(vm["instanceId"])
            ss["vms"][iid] = {"instanceId": iid,
                              "power": vm.get("powerState", "running"),
                              "provisioning": vm.get("provisioningState", "Succeeded"),
                              "zone": vm.get("zone"),
                              "ip": vm.get("privateIp", self._ip(ss["subnet"], int(iid)))}
        group["scaleSets"][name.lower()] = ss
        return ss

    def _add_vm(self, sub_id, group, spec):
        name = spec["name"]
        group["vms"][name.lower()] = {
            "name": name, "power": spec.get("powerState", "running"),
            "provisioning": spec.get("provisioningState", "Succeeded"),
            "size": spec.get("vmSize", "Standard_D2s_v5"), "zones": spec.get("zones", []),
            "ip": spec.get("privateIp", "10.1.0.4"), "location": group["location"]}

    @staticmethod
    def _ip(subnet, index):
        return "%s.%d.%d" % (subnet, (index // 250) % 256, index % 250 + 4)

    def settle(self):
        """Moves deleting scale sets along: instances Deleting, then gone, then the set gone."""
        now = time.time()
        for sub in self.subscriptions.values():
            for group in sub["groups"].values():
                for key in list(group["scaleSets"]):
                    ss = group["scaleSets"][key]
                    if ss["deleting"] is None:
                        continue
                    started, delay = ss["deleting"]
                    if now >= started + 2 * delay:
                        del group["scaleSets"][key]
                    elif now >= started + delay and ss["vms"]:
                        ss["vms"].clear()
                        ss["version"] += 1

    # -- bodies -------------------------------------------------------------------------------

    def vm_body(self, sub, group, ss, vm):
        sub_id, rg, name, iid = sub["id"], group["name"], ss["name"], vm["instanceId"]
        base = ("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/"
                "virtualMachineScaleSets/%s/virtualMachines/%s" % (sub_id, rg, name, iid))
        computer = ss["prefix"] + base36(int(iid)) if iid.isdigit() else ss["prefix"] + iid
        zone = vm["zone"] or (ss["zones"][int(iid) % len(ss["zones"])] if ss["zones"] else None)
        statuses = [{"code": "ProvisioningState/%s" % vm["provisioning"].lower(), "level": "Info",
                     "displayStatus": "Provisioning %s" % vm["provisioning"].lower(),
                     "time": "2024-05-01T10:00:00.1234567+00:00"}]
        if vm["power"] and vm["provisioning"].lower() != "deleting":
            statuses.append({"code": "PowerState/%s" % vm["power"], "level": "Info",
                             "displayStatus": "VM %s" % vm["power"]})
        osdisk = "%s_%s_OsDisk_1_%s" % (name, iid, "%032x" % (hash((sub_id, name, iid)) & (2**128 - 1)))
        body = {
            "name": "%s_%s" % (name, iid), "id": base, "type": "Microsoft.Compute/virtualMachines",
            "location": ss["location"], "tags": {"aks-managed-poolName": name, "fake": "azure"},
            "instanceId": iid, "sku": {"name": ss["sku"], "tier": "Standard"},
            "properties": {
                "latestModelApplied": True, "modelDefinitionApplied": "VirtualMachineScaleSet",
                "vmId": "%08x-0000-4000-8000-%012d" % (abs(hash(name)) & 0xffffffff, int(iid) if iid.isdigit() else 0),
                "hardwareProfile": {"vmSize": ss["sku"]},
                "storageProfile": {
                    "imageReference": {"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy",
                                       "sku": "22_04-lts-gen2", "version": "latest",
                                       "exactVersion": "22.04.202405010"},
                    "osDisk": {"osType": "Linux", "name": osdisk, "createOption": "FromImage",
                               "caching": "ReadOnly", "diskSizeGB": 128,
                               "managedDisk": {"storageAccountType": "Premium_LRS",
                                               "id": "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/disks/%s" % (sub_id, rg, osdisk)}},
                    "dataDisks": []},
                "osProfile": {"computerName": computer, "adminUsername": "azureuser",
                              "linuxConfiguration": {"disablePasswordAuthentication": True,
                                                     "ssh": {"publicKeys": [{"path": "/home/azureuser/.ssh/authorized_keys",
                                                                             "keyData": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC" + "x" * 340 + " fake"}]},
                                                     "provisionVMAgent": True},
                              "secrets": [], "allowExtensionOperations": True,
                              "requireGuestProvisionSignal": True},
                "networkProfile": {"networkInterfaces": [{"id": base + "/networkInterfaces/%s-nic" % name,
                                                          "properties": {"primary": True}}]},
                "networkProfileConfiguration": {"networkInterfaceConfigurations": [{
                    "name": "%s-nic" % name, "properties": {
                        "primary": True, "enableAcceleratedNetworking": True, "enableIPForwarding": True,
                        "ipConfigurations": [{"name": "ipconfig1", "properties": {
                            "primary": True, "privateIPAddressVersion": "IPv4",
                            "subnet": {"id": "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes" % (sub_id, rg)}}}]}}]},
                "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
                "provisioningState": vm["provisioning"],
                "instanceView": {
                    "platformUpdateDomain": int(iid) % 5 if iid.isdigit() else 0,
                    "platformFaultDomain": int(iid) % 3 if iid.isdigit() else 0,
                    "computerName": computer, "osName": "ubuntu", "osVersion": "22.04",
                    "vmAgent": {"vmAgentVersion": "2.9.1.1", "statuses": [{
                        "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
                        "message": "Guest Agent is running", "time": "2024-05-01T10:00:00+00:00"}],
                        "extensionHandlers": [{"type": "Microsoft.Azure.Extensions.CustomScript",
                                               "typeHandlerVersion": "2.1.10",
                                               "status": {"code": "ProvisioningState/succeeded",
                                                          "level": "Info", "displayStatus": "Ready"}}]},
                    "disks": [{"name": osdisk, "statuses": [{"code": "ProvisioningState/succeeded",
                                                              "level": "Info", "displayStatus": "Provisioning succeeded",
                                                              "time": "2024-05-01T09:58:00.1234567+00:00"}]}],
                    "extensions": [{"name": "vmssCSE", "type": "Microsoft.Azure.Extensions.CustomScript",
                                    "typeHandlerVersion": "2.1.10", "statuses": [{
                                        "code": "ProvisioningState/succeeded", "level": "Info",
                                        "displayStatus": "Provisioning succeeded",
                                        "message": "Enable succeeded: \n[stdout]\nok\n[stderr]\n"}]}],
                    "hyperVGeneration": "V2", "statuses": statuses},
                "timeCreated": "2024-05-01T09:57:00.1234567+00:00"}}
        if zone:
            body["zones"] = [zone]
        return body

    def standalone_body(self, sub, group, vm):
        base = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (
            sub["id"], group["name"], vm["name"])
        statuses = [{"code": "ProvisioningState/%s" % vm["provisioning"].lower(), "level": "Info"}]
        if vm["power"] and vm["provisioning"].lower() != "deleting":
            statuses.append({"code": "PowerState/%s" % vm["power"], "level": "Info"})
        body = {"name": vm["name"], "id": base, "type": "Microsoft.Compute/virtualMachines",
                "location": vm["location"],
                "properties": {"hardwareProfile": {"vmSize": vm["size"]},
                               "osProfile": {"computerName": vm["name"], "adminUsername": "azureuser"},
                               "networkProfile": {"networkInterfaces": [{"id": "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkInterfaces/%s-nic" % (sub["id"], group["name"], vm["name"])}]},
                               "provisioningState": vm["provisioning"],
                               "instanceView": {"computerName": vm["name"], "platformFaultDomain": 0,
                                                "statuses": statuses}}}
        if vm["zones"]:
            body["zones"] = vm["zones"]
        return body

    def nic_body(self, nic_id, ip, primary=True):
        return {"name": nic_id.rsplit("/", 1)[-1], "id": nic_id, "properties": {
            "provisioningState": "Succeeded", "primary": primary, "enableAcceleratedNetworking": True,
            "ipConfigurations": [{"name": "ipconfig1", "id": nic_id + "/ipConfigurations/ipconfig1",
                                  "properties": {"privateIPAddress": ip, "privateIPAllocationMethod": "Dynamic",
                                                 "primary": True, "privateIPAddressVersion": "IPv4"}}]}}

    def scale_set_page(self, sub, group, ss, offset, base_url, path):
        """A listing page, served from a cache kept until the scale set changes."""
        key = (sub["id"].lower(), group["name"].lower(), ss["name"].lower(), ss["version"], offset,
               self.page_size)
        cached = self.page_cache.get(key)
        if cached is not None:
            return cached
        ids = sorted(ss["vms"], key=lambda i: (len(i), i))
        chunk = ids[offset:offset + self.page_size]
        values = [json.dumps(self.vm_body(sub, group, ss, ss["vms"][i]), separators=(",", ":"))
                  for i in chunk]
        body = '{"value":[' + ",".join(values) + "]"
        if offset + self.page_size < len(ids):
            link = "%s%s?$expand=instanceView&api-version=%s&$skiptoken=%d" % (
                base_url, quote(path), COMPUTE_API, offset + self.page_size)
            body += ',"nextLink":' + json.dumps(link)
        body = (body + "}").encode()
        if len(self.page_cache) > 4096:
            self.page_cache.clear()
        self.page_cache[key] = body
        return body


def error_body(code, message):
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeAzure/1.0"

    def log_message(self, *args):
        pass

    @property
    def state(self):
        return self.server.state

    def send(self, status, body, headers=None, content_type="application/json; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def body_bytes(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urlsplit(self.path)
        path = url.path
        query = {k.lower(): v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        lowered = path.lower()
        try:
            if lowered.startswith("/_fake/"):
                return self.control(method, lowered, path)
            if lowered == "/metadata/identity/oauth2/token":
                return self.imds_token(query)
            if lowered.endswith("/oauth2/v2.0/token") and method == "POST":
                return self.aad_token(path)
            return self.arm(method, path, query)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- faults -------------------------------------------------------------------------------

    def fault(self, operation):
        """Applies the next injected fault for `operation`; True when the answer was sent."""
        with self.state.lock:
            self.state.counts[operation] = self.state.counts.get(operation, 0) + 1
            spec = None
            for candidate in self.state.faults:
                # "match": a fault only for requests whose path holds this text (any casing).
                match = str(candidate.get("match", "")).lower()
                wanted = candidate["operation"]
                matches = wanted == operation or (
                    wanted == "token" if operation.startswith("token") else wanted == "*")
                if matches and candidate["count"] > 0 and match in self.path.lower():
                    candidate["count"] -= 1
                    spec = dict(candidate)
                    break
            self.state.faults = [f for f in self.state.faults if f["count"] > 0]
        if spec is None:
            return False
        kind = spec.get("kind", "status")
        if kind == "hang":
            time.sleep(float(spec.get("seconds", 5)))
            return False
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        if kind == "body":
            text = spec.get("body", "").replace("{base}", "http://127.0.0.1:%d" % self.server.server_address[1])
            self.send(int(spec.get("status", 200)), text.encode())
            return True
        if kind == "broken":
            self.send(200, b'{"value":[{"id":"/subscriptions/x","properties":{"instanceVi')
            return True
        status = int(spec.get("status", 500))
        headers = {}
        retry = spec.get("retryAfter")
        if retry is not None:
            if isinstance(retry, str) and retry.startswith("date:"):
                headers["Retry-After"] = email.utils.formatdate(time.time() + float(retry[5:]), usegmt=True)
            else:
                headers["Retry-After"] = str(retry)
        code = spec.get("code") or {429: "TooManyRequests", 500: "InternalServerError",
                                    503: "ServiceUnavailable", 408: "RequestTimeout",
                                    403: "AuthorizationFailed", 401: "InvalidAuthenticationToken",
                                    404: "NotFound"}.get(status, "Error%d" % status)
        message = spec.get("message") or "Injected fault %d %s." % (status, code)
        if operation.startswith("token"):
            body = json.dumps({"error": code, "error_description": message}).encode()
        else:
            body = error_body(code, message)
        self.send(status, body, headers)
        return True

    # -- tokens -------------------------------------------------------------------------------

    def issue(self):
        token = "fake-" + secrets.token_urlsafe(24)
        with self.state.lock:
            lifetime = self.state.token_lifetime
            self.state.tokens[token] = time.time() + lifetime
        return token, lifetime

    def aad_token(self, path):
        form = {k: v[-1] for k, v in parse_qs(self.body_bytes().decode(), keep_blank_values=True).items()}
        if self.fault("token_aad"):
            return
        tenant = path.strip("/").split("/")[0]
        creds = self.state.credentials
        if tenant.lower() != str(creds.get("tenantId", "")).lower():
            return self.send(400, json.dumps({"error": "invalid_request",
                                              "error_description": "AADSTS90002: Tenant not found."}).encode())
        if form.get("grant_type") != "client_credentials" or not form.get("scope", "").endswith("/.default"):
            return self.send(400, json.dumps({"error": "invalid_request",
                                              "error_description": "bad grant_type or scope"}).encode())
        client = form.get("client_id", "")
        ok = False
        if "client_secret" in form:
            ok = any(c.get("clientId") == client and c.get("clientSecret") == form["client_secret"]
                     for c in creds.get("clientSecrets", []))
        elif form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            ok = any(c.get("clientId") == client and form.get("client_assertion") in c.get("assertions", [])
                     for c in creds.get("workloadIdentities", []))
        if not ok:
            return self.send(401, json.dumps({"error": "invalid_client",
                                              "error_description": "AADSTS7000215: Invalid client credentials."}).encode())
        token, lifetime = self.issue()
        self.send(200, json.dumps({"token_type": "Bearer", "expires_in": lifetime,
                                   "ext_expires_in": lifetime, "access_token": token}).encode())

    def imds_token(self, query):
        if self.fault("token_imds"):
            return
        if self.headers.get("Metadata", "").lower() != "true":
            return self.send(400, json.dumps({"error": "invalid_request",
                                              "error_description": "Required metadata header not specified"}).encode())
        if query.get("api-version") != IMDS_API or not query.get("resource"):
            return self.send(400, json.dumps({"error": "invalid_request",
                                              "error_description": "bad api-version or resource"}).encode())
        managed = self.state.credentials.get("managedIdentity", {})
        if "client_id" in query or "msi_res_id" in query:
            ok = any(query.get("client_id") == u.get("clientId") if "client_id" in query
                     else query.get("msi_res_id", "").lower() == u.get("resourceId", "").lower()
                     for u in managed.get("userAssigned", []))
        else:
            ok = bool(managed.get("systemAssigned"))
        if not ok:
            return self.send(400, json.dumps({"error": "invalid_request",
                                              "error_description": "Identity not found"}).encode())
        token, lifetime = self.issue()
        now = int(time.time())
        self.send(200, json.dumps({"access_token": token, "expires_in": str(lifetime),
                                   "expires_on": str(now + lifetime), "not_before": str(now),
                                   "resource": query["resource"], "token_type": "Bearer"}).encode())

    # -- ARM ----------------------------------------------------------------------------------

    def arm(self, method, path, query):
        parts = path.strip("/").split("/")
        low = [p.lower() for p in parts]
        operation, api = None, COMPUTE_API
        n = len(low)
        if n >= 7 and low[0] == "subscriptions" and low[2] == "resourcegroups" and low[4] == "providers":
            if low[5] == "microsoft.compute" and n >= 7 and low[6] == "virtualmachinescalesets":
                if n == 7:
                    operation = "list_vmss"
                elif n == 9 and low[8] == "virtualmachines":
                    operation = "list_vmss_vms"
                elif n == 11 and low[8] == "virtualmachines" and low[10] == "networkinterfaces":
                    operation, api = "list_vmss_vm_nics", VMSS_NIC_API
            elif low[5] == "microsoft.compute" and n == 8 and low[6] == "virtualmachines":
                operation = "get_vm"
            elif low[5] == "microsoft.network" and n == 8 and low[6] == "networkinterfaces":
                operation, api = "get_nic", NETWORK_API
        if operation is None or method != "GET":
            return self.send(404, error_body("InvalidResourceType", "The resource type could not be found."))
        if self.fault(operation):
            return
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with self.state.lock:
            expiry = self.state.tokens.get(token)
        if expiry is None:
            return self.send(401, error_body("InvalidAuthenticationToken",
                                             "The access token is invalid."))
        if expiry <= time.time():
            return self.send(401, error_body("ExpiredAuthenticationToken",
                                             "The access token expiry UTC time is earlier than current UTC time."))
        if query.get("api-version") != api:
            return self.send(400, error_body(
                "InvalidApiVersionParameter",
                "The api-version '%s' is invalid. The supported versions are '%s'." % (query.get("api-version", ""), api)))
        with self.state.lock:
            self.state.settle()
            self.state.reads_remaining = max(0, self.state.reads_remaining - 1)
            headers = {"x-ms-ratelimit-remaining-resource": RATE_RESOURCE,
                       "x-ms-ratelimit-remaining-subscription-reads": str(self.state.reads_remaining)}
            status, body = self.arm_read(operation, parts, low, query)
        self.send(status, body, headers)

    def arm_read(self, operation, parts, low, query):
        st = self.state
        sub = st.subscriptions.get(low[1])
        if sub is None:
            return 404, error_body("SubscriptionNotFound", "The subscription '%s' could not be found." % parts[1])
        group = sub["groups"].get(low[3])
        if group is None:
            return 404, error_body("ResourceGroupNotFound", "Resource group '%s' could not be found." % parts[3])
        if operation == "list_vmss":
            values = []
            for ss in group["scaleSets"].values():
                values.append({"name": ss["name"], "id": "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachineScaleSets/%s" % (sub["id"], group["name"], ss["name"]),
                               "type": "Microsoft.Compute/virtualMachineScaleSets", "location": ss["location"],
                               "sku": {"name": ss["sku"], "tier": "Standard", "capacity": len(ss["vms"])},
                               "properties": {"orchestrationMode": ss["mode"], "provisioningState": "Deleting" if ss["deleting"] else "Succeeded",
                                              "virtualMachineProfile": {"osProfile": {"computerNamePrefix": ss["prefix"], "adminUsername": "azureuser"}}}})
            return 200, json.dumps({"value": values}).encode()
        if operation == "get_vm":
            vm = group["vms"].get(low[7])
            if vm is None:
                return 404, error_body("ResourceNotFound", "The Resource 'Microsoft.Compute/virtualMachines/%s' under resource group '%s' was not found." % (parts[7], parts[3]))
            return 200, json.dumps(self.state.standalone_body(sub, group, vm)).encode()
        if operation == "get_nic":
            name = low[7]
            for vm in group["vms"].values():
                if vm["name"].lower() + "-nic" == name:
                    nic_id = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkInterfaces/%s" % (sub["id"], group["name"], parts[7])
                    return 200, json.dumps(st.nic_body(nic_id, vm["ip"])).encode()
            return 404, error_body("NotFound", "Resource /%s not found." % "/".join(parts))
        ss = group["scaleSets"].get(low[7])
        if ss is None:
            return 404, error_body("ParentResourceNotFound", "Can not perform requested operation on nested resource. Parent resource '%s' not found." % parts[7])
        if operation == "list_vmss_vms":
            try:
                offset = int(query.get("$skiptoken", "0"))
            except ValueError:
                return 400, error_body("InvalidSkipToken", "The skip token is invalid.")
            base_url = "http://127.0.0.1:%d" % self.server.server_address[1]
            return 200, st.scale_set_page(sub, group, ss, offset, base_url, "/" + "/".join(parts))
        vm = ss["vms"].get(low[9]) if low[9].isdigit() else None
        if vm is None:
            return 404, error_body("ResourceNotFound", "The Resource 'Microsoft.Compute/virtualMachineScaleSets/%s/virtualMachines/%s' under resource group '%s' was not found." % (parts[7], parts[9], parts[3]))
        nic_id = "/" + "/".join(parts) + "/%s-nic" % ss["name"]
        return 200, json.dumps({"value": [st.nic_body(nic_id, vm["ip"])]}).encode()

    # -- control ------------------------------------------------------------------------------

    def control(self, method, lowered, path):
        st = self.state
        raw = self.body_bytes()
        try:
            args = json.loads(raw) if raw else {}
        except ValueError:
            return self.send(400, b'{"error":"body is not JSON"}')
        reply = {"ok": True}
        with st.lock:
            if lowered == "/_fake/counts" and method == "GET":
                reply = dict(st.counts)
            elif lowered == "/_fake/counts/reset":
                st.counts = {op: 0 for op in OPERATIONS}
            elif lowered == "/_fake/faults" and method == "POST":
                spec = dict(args)
                spec.setdefault("count", 1)
                st.faults.append(spec)
            elif lowered == "/_fake/faults" and method == "DELETE":
                st.faults = []
            elif lowered == "/_fake/tokens" and method == "GET":
                # Every bearer token issued so far, so tests can look for them where no token
                # may appear (logs, error messages, metrics).
                reply = {"tokens": sorted(st.tokens)}
            elif lowered == "/_fake/tokens/expire":
                st.tokens = {t: 0 for t in st.tokens}
            elif lowered == "/_fake/config":
                if "tokenLifetimeSeconds" in args:
                    st.token_lifetime = int(args["tokenLifetimeSeconds"])
                if "pageSize" in args:
                    st.page_size = max(1, int(args["pageSize"]))
                if "credentials" in args:
                    st.credentials = args["credentials"]
            elif lowered == "/_fake/scalesets" and method == "POST":
                group = self._group(args)
                if group is None:
                    return self.send(404, b'{"error":"no such subscription or resource group"}')
                st._add_scale_set(args["subscription"], group, args)
            elif lowered == "/_fake/scalesets" and method == "DELETE":
                ss = self._scale_set(args)
                if ss is None:
                    return self.send(404, b'{"error":"no such scale set"}')
                ss["deleting"] = (time.time(), float(args.get("delay", 0)))
                for vm in ss["vms"].values():
                    vm["provisioning"] = "Deleting"
                ss["version"] += 1
                st.settle()
            elif lowered == "/_fake/vms" and method in ("POST", "DELETE"):
                return self._vm(method, args)
            else:
                return self.send(404, b'{"error":"unknown control path"}')
        self.send(200, json.dumps(reply).encode())

    def _group(self, args):
        sub = self.state.subscriptions.get(str(args.get("subscription", "")).lower())
        return sub and sub["groups"].get(str(args.get("resourceGroup", "")).lower())

    def _scale_set(self, args):
        group = self._group(args)
        return group and group["scaleSets"].get(str(args.get("scaleSet", args.get("name", ""))).lower())

    def _vm(self, method, args):
        """Creates, updates or deletes one scale set instance (`scaleSet` + `instanceId`) or
        standalone VM (`name`). Called with the lock held."""
        st = self.state
        group = self._group(args)
        if group is None:
            return self.send(404, b'{"error":"no such subscription or resource group"}')
        if "scaleSet" in args:
            ss = group["scaleSets"].get(args["scaleSet"].lower())
            if ss is None:
                return self.send(404, b'{"error":"no such scale set"}')
            iid = str(args["instanceId"])
            if method == "DELETE":
                ss["vms"].pop(iid, None)
            else:
                vm = ss["vms"].setdefault(iid, {"instanceId": iid, "power": "running",
                                                "provisioning": "Succeeded", "zone": None,
                                                "ip": st._ip(ss["subnet"], int(iid))})
                vm["power"] = args.get("powerState", vm["power"])
                vm["provisioning"] = args.get("provisioningState", vm["provisioning"])
            ss["version"] += 1
        else:
            name = args["name"].lower()
            if method == "DELETE":
                group["vms"].pop(name, None)
            elif name in group["vms"]:
                vm = group["vms"][name]
                vm["power"] = args.get("powerState", vm["power"])
                vm["provisioning"] = args.get("provisioningState", vm["provisioning"])
            else:
                st._add_vm(args["subscription"], group, args)
        self.send(200, b'{"ok":true}')


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    # A parent may start us with signals blocked (Foundation's Process does); stopping must work.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--port-file")
    options = parser.parse_args()
    with open(options.inventory) as handle:
        inventory = json.load(handle)
    server = Server(("127.0.0.1", options.port), Handler)
    server.state = State(inventory, max(1, options.page_size))
    port = server.server_address[1]
    if options.port_file:
        with open(options.port_file + ".tmp", "w") as handle:
            handle.write("%d\n" % port)
        import os
        os.replace(options.port_file + ".tmp", options.port_file)
    print("PORT %d" % port, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
