"""Start fake_azure.py and drive its control API from Python tests. Standard library only.

    with FakeAzure(inventory_dict, page_size=100) as fake:
        fake.inject("list_vmss_vms", status=429, retryAfter=5, count=3)
        print(fake.base_url, fake.counts())
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_azure.py")


class FakeAzure:
    """One fake Azure process on a free loopback port; stopped on close()."""

    def __init__(self, inventory, page_size=1000, startup_timeout=15.0):
        self.directory = tempfile.mkdtemp(prefix="fakeazure-")
        inventory_path = inventory
        if not isinstance(inventory, str):
            inventory_path = os.path.join(self.directory, "inventory.json")
            with open(inventory_path, "w") as handle:
                json.dump(inventory, handle)
        port_file = os.path.join(self.directory, "port")
        self.process = subprocess.Popen(
            [sys.executable, SCRIPT, "--port", "0", "--inventory", inventory_path,
             "--page-size", str(page_size), "--port-file", port_file],
            stdout=subprocess.DEVNULL)
        deadline = time.time() + startup_timeout
        self.port = None
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("fake Azure exited with %s" % self.process.returncode)
            try:
                with open(port_file) as handle:
                    self.port = int(handle.read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.02)
        if self.port is None:
            self.close()
            raise RuntimeError("fake Azure did not report its port")
        self.base_url = "http://127.0.0.1:%d" % self.port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def counts(self):
        return self.control("GET", "/_fake/counts")

    def reset_counts(self):
        return self.control("POST", "/_fake/counts/reset")

    def inject(self, operation, count=1, **spec):
        """Next `count` requests of `operation` fail as `spec` says (status=, retryAfter=,
        code=, kind="hang"|"reset"|"broken"|"body", seconds=, body=)."""
        return self.control("POST", "/_fake/faults", dict(spec, operation=operation, count=count))

    def clear_faults(self):
        return self.control("DELETE", "/_fake/faults")

    def expire_tokens(self):
        return self.control("POST", "/_fake/tokens/expire")

    def configure(self, **settings):
        return self.control("POST", "/_fake/config", settings)

    def create_scale_set(self, subscription, resource_group, name, **spec):
        return self.control("POST", "/_fake/scalesets", dict(
            spec, subscription=subscription, resourceGroup=resource_group, name=name))

    def delete_scale_set(self, subscription, resource_group, name, delay=0.0):
        return self.control("DELETE", "/_fake/scalesets", {
            "subscription": subscription, "resourceGroup": resource_group, "scaleSet": name,
            "delay": delay})

    def set_vm(self, subscription, resource_group, scale_set=None, instance_id=None, name=None,
               **states):
        body = dict(states, subscription=subscription, resourceGroup=resource_group)
        if scale_set is not None:
            body.update(scaleSet=scale_set, instanceId=str(instance_id))
        else:
            body["name"] = name
        return self.control("POST", "/_fake/vms", body)

    def delete_vm(self, subscription, resource_group, scale_set=None, instance_id=None, name=None):
        body = {"subscription": subscription, "resourceGroup": resource_group}
        if scale_set is not None:
            body.update(scaleSet=scale_set, instanceId=str(instance_id))
        else:
            body["name"] = name
        return self.control("DELETE", "/_fake/vms", body)
