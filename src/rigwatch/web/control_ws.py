"""Control messages of the live WebSocket ``/ws`` (one :class:`ControlChannel` per session).

Today's messages keep their shapes: ``valve_command {"valves": [9 ints]}`` answered
``valve_response {"success", "valves"}`` (and ``valve_state {"valves"}`` broadcast to every
client by :class:`~rigwatch.web.control_feed.ControlFeed`), ``step_motor_command {"motor_id",
"angle"}`` answered ``step_motor_response {"success", "motor_id", "angle", "response"}``,
``system_mode {"mode"}`` (the runner's state, see :mod:`rigwatch.control.system_mode`). Added:

- ``control_authority {"action": "request"|"renew"|"release", "client"}``: the session takes
  (or renews, or gives up) control authority; the reply carries the lease, which the session
  keeps and uses for its commands;
- ``heartbeat``: renews the session's lease (the operator watchdog's heartbeat), answered
  ``heartbeat {"holder", "expires_in_s"}``;
- ``subscribe_control``: answered ``control_state {"seq", "state"}`` (``state``: the body of
  ``GET /api/control``), then sent again after every change of the runner, the authority's
  holder or an actuator (see :mod:`rigwatch.web.control_feed`); reading needs neither token
  nor authority. ``unsubscribe_control`` ends it, answered ``control_unsubscribed``.

A command needs the token when the station requires one (error ``unauthorized``), then control
authority (error ``no_authority``, audited); an abort (``system_mode`` ``safe``) needs no
authority. A refusal by an interlock or the runner is an error ``refused`` naming the rule; a
device failure is a ``success: false`` reply with its ``message``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rigwatch.acquisition.live import pack
from rigwatch.control.audit import record_refusal
from rigwatch.errors import (
    ActuatorFault,
    AuthorityRefused,
    CommandRefused,
    ControlError,
    ModeRefused,
    TransitionRefused,
)
from rigwatch.station import Station
from rigwatch.web.control_feed import ControlFeed
from rigwatch.web.control_schemas import STM32_OUTPUTS, AuthorityIn
from rigwatch.web.control_views import control_out, valve_bits
from rigwatch.web.live_ws import LiveSession, MessageRejected
from rigwatch.web.routers.control import (
    change_authority,
    motor_ids,
    motor_name,
    valve_bank_specs,
)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SystemModeMsg(_Msg):
    type: Literal["system_mode"]
    mode: str | None = None
    lease: str | None = None


class AuthorityMsg(_Msg):
    type: Literal["control_authority"]
    action: Literal["request", "renew", "release"]
    client: str = Field(default="", max_length=80, pattern=r"^[A-Za-z0-9_.@:\- ]*$")
    lease: str | None = None


class HeartbeatMsg(_Msg):
    type: Literal["heartbeat"]
    lease: str | None = None


class ValveCommandMsg(_Msg):
    type: Literal["valve_command"]
    valves: list[Literal[0, 1]] = Field(min_length=STM32_OUTPUTS, max_length=STM32_OUTPUTS)
    lease: str | None = None


class StepMotorCommandMsg(_Msg):
    type: Literal["step_motor_command"]
    motor_id: int
    angle: float = Field(allow_inf_nan=False)
    lease: str | None = None


class SubscribeControlMsg(_Msg):
    type: Literal["subscribe_control", "unsubscribe_control"]


class ControlChannel:
    """The control messages of one live session.

    Args:
        session: the live session (its station, ``may_command`` and ``send``).
        feed: where the session registers for ``valve_state`` broadcasts and, on request,
            ``control_state`` (None: ``subscribe_control`` answers the state of now only).
    """

    def __init__(self, session: LiveSession, feed: ControlFeed | None) -> None:
        self.session = session
        self.station: Station = session.station
        self.feed = feed
        self.lease: str | None = None
        self.handlers: dict[str, Handler] = {
            "system_mode": self._system_mode,
            "control_authority": self._authority,
            "heartbeat": self._heartbeat,
            "valve_command": self._valve_command,
            "step_motor_command": self._step_motor_command,
            "subscribe_control": self._subscribe_control,
            "unsubscribe_control": self._unsubscribe_control,
        }
        if feed is not None:
            feed.register(session.send)

    def close(self) -> None:
        """Stop the broadcasts to this session (its lease lives on until it lapses)."""
        if self.feed is not None:
            self.feed.unregister(self.session.send)

    # -- checks ---------------------------------------------------------------------------------

    def _refused(self, who: str, what: str, reason: str, counter: str = "control.refused") -> None:
        record_refusal(
            self.station.control.audit,
            self.station.counters,
            who=who,
            source="ws",
            target=what,
            reason=reason,
            counter=counter,
        )

    def _token(self) -> None:
        if not self.session.may_command:
            self._refused("ws-client", "command", "no token")
            raise MessageRejected(
                "unauthorized",
                "this station requires a token for commands: open the WebSocket with "
                "?token=<token> or an Authorization: Bearer header",
            )

    def _operator(self, lease: str | None, what: str) -> str:
        self._token()
        try:
            return self.station.control.authority.check(lease or self.lease).holder
        except AuthorityRefused as exc:
            self._refused("ws-client", what, str(exc), "control.no_authority")
            raise MessageRejected("no_authority", str(exc)) from None

    # -- handlers -------------------------------------------------------------------------------

    async def _system_mode(self, obj: dict[str, Any]) -> None:
        m = SystemModeMsg.model_validate(obj)
        st = self.station
        if m.mode is not None:
            if st.modes.is_abort(m.mode):
                self._token()
                who = st.control.authority.caller(m.lease or self.lease, "ws-client")
            else:
                try:
                    st.modes.parse(m.mode)
                except ModeRefused as exc:
                    raise MessageRejected("mode_refused", str(exc)) from None
                who = self._operator(m.lease, f"system_mode {m.mode}")
            try:
                await asyncio.to_thread(st.set_mode, m.mode, who, "ws")
            except ModeRefused as exc:
                raise MessageRejected("mode_refused", str(exc)) from None
        await self.session.send(pack({"type": "system_mode", "mode": st.mode}))

    async def _authority(self, obj: dict[str, Any]) -> None:
        m = AuthorityMsg.model_validate(obj)
        self._token()
        body = AuthorityIn(action=m.action, client=m.client, lease=m.lease)
        try:
            out = await asyncio.to_thread(
                change_authority, self.station, body, self.lease, "ws-client", "ws"
            )
        except (AuthorityRefused, TransitionRefused) as exc:
            raise MessageRejected("no_authority", str(exc)) from None
        except ValueError as exc:
            raise MessageRejected("invalid_field", str(exc)) from None
        self.lease = out.lease
        await self.session.send(pack({"type": "control_authority", **out.model_dump()}))

    async def _heartbeat(self, obj: dict[str, Any]) -> None:
        m = HeartbeatMsg.model_validate(obj)
        auth = self.station.control.authority
        try:
            lease = auth.renew(m.lease or self.lease)
        except AuthorityRefused as exc:
            raise MessageRejected("no_authority", str(exc)) from None
        await self.session.send(
            pack({"type": "heartbeat", "holder": lease.holder, "expires_in_s": auth.lease_s})
        )

    async def _subscribe_control(self, obj: dict[str, Any]) -> None:
        SubscribeControlMsg.model_validate(obj)
        if self.feed is None:
            state = control_out(self.station).model_dump(mode="json")
            await self.session.send(pack({"type": "control_state", "seq": 0, "state": state}))
            return
        await self.session.send(self.feed.subscribe_state(self.session.send))

    async def _unsubscribe_control(self, obj: dict[str, Any]) -> None:
        SubscribeControlMsg.model_validate(obj)
        if self.feed is not None:
            self.feed.unsubscribe_state(self.session.send)
        await self.session.send(pack({"type": "control_unsubscribed"}))

    async def _command(self, changes: dict[str, Any], who: str) -> tuple[bool, str]:
        """Send ``changes`` and wait; ``(success, reply or failure)``."""
        commander = self.station.control.commander

        def run() -> tuple[bool, str]:
            status = commander.command(changes, who=who, source="ws")
            try:
                status.wait(self.station.control.runner.command_timeout_s)
            except (ActuatorFault, ControlError, TimeoutError) as exc:
                return False, str(exc)
            return True, status.reply

        try:
            return await asyncio.to_thread(run)
        except CommandRefused as exc:
            raise MessageRejected("refused", str(exc)) from None

    async def _valve_command(self, obj: dict[str, Any]) -> None:
        m = ValveCommandMsg.model_validate(obj)
        who = self._operator(m.lease, "valve_command")
        try:
            names = valve_bank_specs(self.station)
        except Exception as exc:
            raise MessageRejected("refused", str(getattr(exc, "detail", exc))) from None
        specs = self.station.control.commander.specs
        changes: dict[str, Any] = {
            n: specs[n].position(bool(bit)) for n, bit in zip(names, m.valves, strict=True)
        }
        ok, message = await self._command(changes, who)
        reply: dict[str, Any] = {
            "type": "valve_response",
            "success": ok,
            "valves": valve_bits(self.station)[0] if ok else list(m.valves),
        }
        if not ok:
            reply["message"] = message
        await self.session.send(pack(reply))

    async def _step_motor_command(self, obj: dict[str, Any]) -> None:
        m = StepMotorCommandMsg.model_validate(obj)
        who = self._operator(m.lease, "step_motor_command")
        name = motor_name(self.station, m.motor_id)
        if name is None:
            reason = f"unknown motor_id {m.motor_id}; motors: {', '.join(motor_ids(self.station))}"
            self._refused(who, f"motor {m.motor_id}", reason)
            raise MessageRejected("refused", reason)
        ok, response = await self._command({name: m.angle}, who)
        await self.session.send(
            pack(
                {
                    "type": "step_motor_response",
                    "success": ok,
                    "motor_id": m.motor_id,
                    "angle": m.angle,
                    "response": response,
                }
            )
        )
