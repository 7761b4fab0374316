"""deploy/kuberay-rayjob.yaml, checked offline: it runs `curate run` with this project's dependencies and the
pinned Ray, gives every Ray container and the submitter the token from a Kubernetes Secret, and holds no secret."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import ROOT

RAYJOB = ROOT / "deploy/kuberay-rayjob.yaml"


def rayjob() -> dict:
    return yaml.safe_load(RAYJOB.read_text())


def containers(job: dict) -> list[dict]:
    """The submitter's, the head's and every worker group's containers."""
    cluster = job["spec"]["rayClusterSpec"]
    pods = [job["spec"]["submitterPodTemplate"], cluster["headGroupSpec"]["template"],
            *(group["template"] for group in cluster["workerGroupSpecs"])]
    return [c for pod in pods for c in pod["spec"]["containers"]]


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_entrypoint_runs_curate_in_the_shipped_working_dir():
    job = rayjob()
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["spec"]["entrypoint"] == "python -m curate.cli run recipes/lemur.yaml --workdir s3://my-bucket/runs/lemur"
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert env["working_dir"].endswith(".zip") and (ROOT / "recipes/lemur.yaml").is_file()


def test_every_pod_reaches_the_bucket_as_a_service_account_and_mounts_nothing():
    """The work directory is in a bucket: no shared volume, credentials from the pods' service account."""
    job = rayjob()["spec"]
    pods = [job["submitterPodTemplate"], job["rayClusterSpec"]["headGroupSpec"]["template"],
            *[g["template"] for g in job["rayClusterSpec"]["workerGroupSpecs"]]]
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == "curate-s3"
        assert "volumes" not in pod["spec"]
        assert all("volumeMounts" not in c for c in pod["spec"]["containers"])


def test_runtime_env_pip_is_the_projects_dependencies_but_ray():
    """The image provides Ray; pip adds exactly the rest of pyproject's dependencies, same ranges."""
    deps = [d for d in project()["dependencies"] if not d.startswith("ray")]
    assert yaml.safe_load(rayjob()["spec"]["runtimeEnvYAML"])["pip"] == deps


def test_every_image_runs_a_ray_version_inside_the_declared_range():
    ray_dep = next(d for d in project()["dependencies"] if d.startswith("ray["))
    low, high = re.search(r">=([\d.]+),<([\d.]+)", ray_dep).groups()
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    job = rayjob()
    versions = {re.match(r"rayproject/ray:([\d.]+)", c["image"]).group(1) for c in containers(job)}
    assert versions == {job["spec"]["rayClusterSpec"]["rayVersion"]}
    assert all(as_tuple(low) <= as_tuple(v) < as_tuple(high) for v in versions)


def test_every_container_takes_the_token_from_a_secret():
    for c in containers(rayjob()):
        env = {e["name"]: e for e in c["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token", c["name"]
        assert set(env["RAY_AUTH_TOKEN"]) == {"name", "valueFrom"}, c["name"]  # no inline value
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "curate-ray-token", "key": "auth_token"}


SECRET_LIKE = re.compile(r"token|secret|password|access_key|credential", re.I)


def secret_literals(node) -> list[str]:
    """Names of env entries with an inline `value`, and keys with a string value, that look like secrets."""
    found = []
    if isinstance(node, dict):
        if SECRET_LIKE.search(str(node.get("name", ""))) and "value" in node:
            found.append(node["name"])
        for key, value in node.items():
            if SECRET_LIKE.search(key) and isinstance(value, str):
                found.append(key)
            found += secret_literals(value)
    elif isinstance(node, list):
        for item in node:
            found += secret_literals(item)
    return found


def test_secret_literals_finds_inline_secrets():
    env = [{"name": "RAY_AUTH_TOKEN", "value": "abc"}, {"name": "RAY_AUTH_MODE", "value": "token"}]
    assert secret_literals({"env": env, "aws_secret_access_key": "k"}) == ["RAY_AUTH_TOKEN", "aws_secret_access_key"]


def test_no_secret_is_written_in_the_file():
    """One RayJob (no Secret object in the file), and no secret-looking literal anywhere in it."""
    docs = list(yaml.safe_load_all(RAYJOB.read_text()))
    assert [d["kind"] for d in docs] == ["RayJob"]
    assert secret_literals(docs[0]) == []
