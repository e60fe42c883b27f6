"""The agent's cloud clients, built from a kiosk instance: transport, pusher, puller.

Both the command line (``agent.cli``) and the daemon (``agent.runner``) build them here,
so neither imports the other.
"""

from __future__ import annotations

from sync import delivery, health
from sync import pull as pull_mod
from sync.transport import HttpTransport

from . import link as link_mod


def transport_for(inst) -> tuple[HttpTransport, dict]:
    link = link_mod.load(inst.root)
    c = inst.config.cloud
    return HttpTransport(link["url"], link["credential"], connect_timeout=c.connect_timeout_seconds,
                         read_timeout=c.request_timeout_seconds, ca_bundle=c.ca_bundle,
                         health=health.Reporter(inst.connect, inst.clock)), link


def pusher_for(inst) -> delivery.Pusher:
    transport, link = transport_for(inst)
    a = inst.config.agent
    return delivery.Pusher(inst.connect(), transport, device_id=link["deviceId"], clock=inst.clock,
                           batch_size=a.batch_size, backoff_base=a.backoff_base_seconds,
                           backoff_max=a.backoff_max_seconds)


def puller_for(inst, transport=None) -> pull_mod.Puller:
    transport = transport or transport_for(inst)[0]
    return pull_mod.Puller(inst.connect(), transport, hotels=list(inst.config.property.hotels),
                           node=inst.config.property.kiosk_id, clock=inst.clock, trust_path=inst.trust_path,
                           page_size=inst.config.agent.pull_page_size)
