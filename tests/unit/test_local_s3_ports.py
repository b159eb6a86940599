"""SeaweedFS ports stay out of the kernel's ephemeral range, where outgoing connections could take them."""

from __future__ import annotations

from modelpipe.local.s3 import GRPC_OFFSET, _ephemeral_port_floor, free_port_with_grpc


def test_port_pairs_stay_below_the_ephemeral_range() -> None:
    floor = _ephemeral_port_floor()
    for _ in range(50):
        port = free_port_with_grpc()
        assert port + GRPC_OFFSET < floor


def test_taken_ports_and_their_twins_are_avoided() -> None:
    first = free_port_with_grpc()
    for _ in range(50):
        port = free_port_with_grpc({first})
        assert first not in (port, port + GRPC_OFFSET)
