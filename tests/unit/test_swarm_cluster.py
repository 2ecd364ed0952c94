"""The swarm cluster builder's pure parts (the cluster itself: `make test-swarm`)."""

from __future__ import annotations

import json

from tests.swarm.cluster import (
    CLUSTER_LABEL,
    NODE_RUN_OPTIONS,
    PID_LABEL,
    Node,
    dead_clusters,
)


def _labels(name: str, pid: int) -> str:
    return json.dumps(f"{CLUSTER_LABEL}={name},{PID_LABEL}={pid},other=x")


def test_dead_clusters_are_those_whose_creator_is_gone() -> None:
    lines = [
        _labels("sgswarms5-100-aaaaaa", 100),
        _labels("sgswarms5-100-aaaaaa", 100),  # its second node
        _labels("sgswarms5-200-bbbbbb", 200),
        _labels("sgswarms6-300-cccccc", 300),  # another slot's
    ]
    alive = {200}.__contains__
    assert dead_clusters(lines, prefix="sgswarms5-", alive=alive) == ["sgswarms5-100-aaaaaa"]
    assert dead_clusters(lines, prefix="sgswarm", alive=alive) == [
        "sgswarms5-100-aaaaaa",
        "sgswarms6-300-cccccc",
    ]


def test_a_container_without_a_pid_label_is_never_taken_for_dead() -> None:
    line = json.dumps(f"{CLUSTER_LABEL}=sgswarms5-1-a")
    assert dead_clusters([line], alive=lambda pid: False) == []


def test_nodes_are_not_privileged_and_keep_their_images_in_a_tmpfs() -> None:
    # --privileged fails on this kernel ("unable to apply caps"): the explicit set is used.
    assert "--privileged" not in NODE_RUN_OPTIONS
    assert "--cap-add=SYS_ADMIN" in NODE_RUN_OPTIONS
    assert "--tmpfs=/var/lib/docker:exec" in NODE_RUN_OPTIONS


def test_a_node_is_driven_through_its_socket(tmp_path: object) -> None:
    from pathlib import Path

    node = Node("n-edge", "172.29.0.3", Path("/tmp/x/n-edge"), "edge", manager=False)
    assert node.docker_host == "unix:///tmp/x/n-edge/docker.sock"
    assert node.env()["DOCKER_HOST"] == node.docker_host


def test_the_node_image_is_built_only_when_asked_for() -> None:
    # `make images` (CI) builds every image by default; the swarm node is for
    # `make test-swarm` alone, which names it.
    from tests.unit.test_images_manifest import build

    assert build.SPECS["swarm-node"].on_demand
    assert "swarm-node" not in [spec.name for spec in build.select(None)]
    assert [spec.name for spec in build.select(["swarm-node"])] == ["swarm-node"]
