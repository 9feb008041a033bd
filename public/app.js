// The demo chat page, on @edge-relay/client (bundled into /relay-client.js by scripts/build-client.mjs).
// No framework. User text (names, messages, reasons) only ever reaches the page through textContent
// and attributes, never as HTML; the page's Content-Security-Policy allows no inline script or style.
//
// What tests read: #state[data-state], #transport-used, #reconnects, #last-seq; #messages > li with
// data-seq, data-id, data-user and data-own for every stored message, in offset order; #pending > li
// with data-pending ("true", or "failed") for messages not stored yet; #members > li with data-user,
// data-transports (space-separated) and data-connections.

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const ROOM_NAME = /^[A-Za-z0-9._~-]{1,64}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are what a name may not contain
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const TRANSPORTS = ["auto", "websocket", "sse", "connect"];
const STATE_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  disconnected: "Offline, reconnecting…",
  closed: "Closed",
};

const ui = {
  joinForm: /** @type {HTMLFormElement} */ ($("join-form")),
  room: /** @type {HTMLInputElement} */ ($("room")),
  user: /** @type {HTMLInputElement} */ ($("user")),
  transport: /** @type {HTMLSelectElement} */ ($("transport")),
  formError: $("form-error"),
  state: $("state"),
  transportUsed: $("transport-used"),
  reconnects: $("reconnects"),
  lastSeq: $("last-seq"),
  queuedItem: $("queued-item"),
  queued: $("queued"),
  roomLink: /** @type {HTMLAnchorElement} */ ($("room-link")),
  roomName: $("room-name"),
  log: $("log"),
  messages: $("messages"),
  pending: $("pending"),
  sendForm: /** @type {HTMLFormElement} */ ($("send-form")),
  text: /** @type {HTMLInputElement} */ ($("text")),
  members: $("members"),
  membersNote: $("members-note"),
  memberCount: $("member-count"),
};

/** The relay client module, loaded once. */
let relay;
/** The current conversation: one client, one room, one transport. */
let chat = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Visually hidden text for screen readers, e.g. "offset" before "#12". */
function vh(text) {
  return el("span", "vh", text);
}

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function formatMs(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

function showError(message) {
  ui.formError.textContent = message;
  ui.formError.hidden = !message;
}

/** Keeps the conversation scrolled to the newest line, unless the reader scrolled up. */
function stickToBottom(update) {
  const { log } = ui;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  update();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function isOwn(event) {
  return chat.ids.has(event.id) || chat.names.has(event.user);
}

/** The author line: the name, and "(you)" on one's own messages, which also changes their look. */
function authorNode(user, own) {
  const author = el("span", "author", user || "anonymous");
  if (own) author.append(" ", el("span", "you", "(you)"));
  return author;
}

/** Fills a message line from a stored event. */
function fillStored(li, event, latencyText, latencyTitle) {
  const own = isOwn(event);
  li.className = own ? "msg own" : "msg";
  li.dataset.seq = String(event.seq);
  li.dataset.id = event.id;
  li.dataset.user = event.user;
  li.dataset.own = String(own);
  delete li.dataset.pending;
  const time = Number(event.timeMs);
  const stamp = el("time", "time", clockTime(time));
  stamp.dateTime = new Date(time).toISOString();
  const seq = el("span", "seq");
  seq.title = "offset in the room's log";
  seq.append(vh("offset "), `#${event.seq}`);
  const latency = el("span", "latency");
  latency.title = latencyTitle;
  latency.append(vh("delivery "), latencyText);
  const meta = el("span", "meta");
  meta.append(authorNode(event.user, own), stamp, seq, latency);
  li.replaceChildren(meta, el("p", "text", event.text));
}

/** Puts a line into #messages in offset order (it is almost always the last). */
function insertBySeq(li, seq) {
  let before = ui.messages.lastElementChild;
  while (before?.dataset.seq !== undefined && Number(before.dataset.seq) > seq) before = before.previousElementSibling;
  if (before) before.after(li);
  else ui.messages.prepend(li);
}

/**
 * A stored event, from the stream or from the answer to our own publish, whichever comes first: each
 * offset gets one line. Our own pending line (same id) becomes that line, so a message is never
 * shown twice.
 */
function placeStored(event, via) {
  const seq = Number(event.seq);
  if (!chat || chat.bySeq.has(seq)) return;
  const receivedAt = Date.now();
  const sent = chat.sent.get(event.id);
  let latencyText;
  let latencyTitle;
  if (sent) {
    latencyText = formatMs(performance.now() - sent.at);
    latencyTitle = `your message: from publish to the stored event (${via})`;
  } else if (Number(event.timeMs) < chat.joinedAt) {
    latencyText = "history";
    latencyTitle = "stored before you joined";
  } else {
    latencyText = formatMs(receivedAt - Number(event.timeMs));
    latencyTitle = "delivery latency: received − stored";
  }
  const li = sent?.li ?? el("li");
  fillStored(li, event, latencyText, latencyTitle);
  chat.bySeq.set(seq, li);
  stickToBottom(() => insertBySeq(li, seq));
}

function notice(text) {
  stickToBottom(() => ui.messages.append(el("li", "notice", text)));
}

/** A line for a message we publish, shown at once and replaced by the stored event when it comes. */
function pendingLine(text) {
  const li = el("li", "msg own pending");
  li.dataset.pending = "true";
  li.dataset.own = "true";
  const delivery = el("span", "delivery");
  const meta = el("span", "meta");
  meta.append(authorNode(chat.user, true), delivery);
  li.append(meta, el("p", "text", text));
  describePending(li);
  return li;
}

function describePending(li) {
  const delivery = li.querySelector(".delivery");
  if (!delivery || li.dataset.pending !== "true") return;
  const online = chat?.client.getSnapshot().state === "connected";
  delivery.textContent = online ? "sending…" : "pending: sends when reconnected";
}

async function send(text) {
  const c = chat;
  const id = crypto.randomUUID();
  const li = pendingLine(text);
  li.dataset.id = id;
  c.ids.add(id);
  c.sent.set(id, { at: performance.now(), li });
  stickToBottom(() => ui.pending.append(li));
  await publish(c, text, id, li);
}

async function publish(c, text, id, li) {
  try {
    const answer = await c.client.publish(text, { id });
    const event = answer?.event ?? answer;
    if (c === chat && event?.seq !== undefined) placeStored(event, "publish answer");
  } catch (err) {
    if (c !== chat || li.dataset.seq !== undefined) return;
    li.dataset.pending = "failed";
    const delivery = li.querySelector(".delivery");
    delivery.textContent = `not sent: ${err?.message ?? err}`;
    const retry = el("button", "retry", "Retry");
    retry.type = "button";
    retry.addEventListener("click", () => {
      retry.remove();
      li.dataset.pending = "true";
      describePending(li);
      publish(c, text, id, li);
    });
    delivery.after(retry);
  }
}

function renderMembers(members) {
  const key = JSON.stringify(members);
  if (key === chat.membersKey) return;
  chat.membersKey = key;
  ui.memberCount.textContent = String(members.length);
  ui.members.replaceChildren(
    ...members.map((m) => {
      const li = el("li");
      li.dataset.user = m.user;
      li.dataset.transports = [...m.transports].join(" ");
      li.dataset.connections = String(m.connections);
      const name = el("span", "member-name", m.user || "anonymous");
      const you = m.user === chat.user;
      if (you) li.dataset.you = "true";
      const detail = el("span", "member-detail");
      for (const t of m.transports) detail.append(el("span", "badge", t), " ");
      detail.append(`${m.connections} ${m.connections === 1 ? "connection" : "connections"}`);
      li.append(name);
      if (you) li.append(" ", el("span", "you", "(you)"));
      li.append(detail);
      return li;
    }),
  );
}

function render() {
  if (!chat) return;
  const s = chat.client.getSnapshot();
  if (ui.state.dataset.state !== s.state || ui.state.dataset.reason !== (s.reason?.message ?? "")) {
    ui.state.dataset.state = s.state;
    ui.state.dataset.reason = s.reason?.message ?? "";
    const reason = s.state !== "connected" && s.reason?.message ? ` (${s.reason.message})` : "";
    ui.state.textContent = (STATE_TEXT[s.state] ?? s.state) + reason;
    for (const li of ui.pending.children) describePending(li);
  }
  ui.transportUsed.textContent = s.transport || "–";
  ui.reconnects.textContent = String(s.reconnects ?? 0);
  ui.lastSeq.textContent = String(s.lastSeq ?? 0);
  ui.queued.textContent = String(s.pending ?? 0);
  ui.queuedItem.hidden = !s.pending;
  renderMembers(s.members ?? []);
  // While reconnecting the list is the last one seen; the room sends it afresh on reconnect.
  ui.membersNote.hidden = s.state !== "disconnected";
}

/** The link that names this room (and transport, unless auto); it never carries your name. */
function roomUrl(room, transport) {
  const q = new URLSearchParams({ room });
  if (transport !== "auto") q.set("transport", transport);
  return `?${q}`;
}

function join(room, user, transport) {
  if (chat) {
    chat.unsubscribe();
    chat.client.close();
  }
  ui.messages.replaceChildren();
  ui.pending.replaceChildren();
  const client = relay.createClient({ url: location.origin, room, transport, user, since: 0, presence: true });
  chat = {
    client,
    room,
    transport,
    user,
    names: new Set([user]),
    ids: new Set(),
    sent: new Map(),
    bySeq: new Map(),
    joinedAt: Date.now(),
    membersKey: "",
    unsubscribe: () => {},
  };
  const c = chat;
  client.on("message", (event) => c === chat && placeStored(event, "stream"));
  client.on("gap", (gap) => {
    if (c !== chat) return;
    if (gap.reason === "epoch") {
      // The room's log was reset: offsets start again and the old ones mean nothing.
      for (const li of ui.messages.querySelectorAll("li[data-seq]")) {
        li.dataset.previousSeq = li.dataset.seq;
        delete li.dataset.seq;
      }
      c.bySeq.clear();
    }
    notice(`Missed messages (${gap.reason}): ${gap.text}`);
  });
  chat.unsubscribe = client.subscribe(render);
  ui.roomName.textContent = room;
  ui.roomLink.href = roomUrl(room, transport);
  history.replaceState(null, "", roomUrl(room, transport));
  sessionStorage.setItem("relay-demo-user", user);
  render();
}

function onJoin(e) {
  e.preventDefault();
  const room = ui.room.value.trim();
  const user = ui.user.value.trim();
  const transport = ui.transport.value;
  if (!ROOM_NAME.test(room) || room === "." || room === "..") {
    showError("A room name is 1–64 characters of A–Z a–z 0–9 . _ ~ - (not . or ..).");
    ui.room.focus();
    return;
  }
  if (!user || CONTROL.test(user)) {
    showError("A name is 1–64 characters, without control characters.");
    ui.user.focus();
    return;
  }
  showError("");
  if (chat && chat.room === room && chat.transport === transport) {
    if (chat.user !== user) {
      // A new name, same room: the client reconnects under it and the conversation stays.
      chat.user = user;
      chat.names.add(user);
      chat.membersKey = "";
      chat.client.setUser(user);
      sessionStorage.setItem("relay-demo-user", user);
      render();
    }
    return;
  }
  join(room, user, transport);
}

function onSend(e) {
  e.preventDefault();
  const text = ui.text.value;
  if (!chat || !text.trim()) return;
  ui.text.value = "";
  send(text);
}

async function main() {
  const params = new URLSearchParams(location.search);
  const room = params.get("room") ?? "lobby";
  const transport = TRANSPORTS.includes(params.get("transport")) ? params.get("transport") : "auto";
  const user =
    params.get("user") || sessionStorage.getItem("relay-demo-user") || `guest-${crypto.randomUUID().slice(0, 4)}`;
  ui.room.value = room;
  ui.user.value = user;
  ui.transport.value = transport;
  ui.joinForm.addEventListener("submit", onJoin);
  ui.sendForm.addEventListener("submit", onSend);
  try {
    relay = await import("./relay-client.js");
  } catch (err) {
    ui.state.dataset.state = "closed";
    ui.state.textContent = "Client missing";
    showError(`Could not load /relay-client.js (${err?.message ?? err}). npm start builds it.`);
    return;
  }
  if (!ROOM_NAME.test(room) || room === "." || room === "..") {
    ui.state.textContent = "Not connected";
    showError("The room in the link is not a valid room name; pick another.");
    return;
  }
  join(room, user, transport);
}

main();
