// The lab console page: spice-html5 (Debian's copy, served beside us) plus our toolbar.
// Values come from status.json (lab name, Stop link, banners) — never a token.
import * as SpiceHtml5 from './spice-html5/main.js';
import * as Messages from './spice-html5/spicemsg.js';
import { Constants } from './spice-html5/enums.js';
import { keysFor, SHIFT } from './keys.js';

const KEY_DELAY_MS = 12;          // between key events when typing a paste
const STATUS_POLL_MS = 15000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
// QEMU 7.2's SPICE server has crashed (SIGSEGV) when a client dropped while a channel was
// still connecting; give the old session time to close before opening a new one.
const SETTLE_MS = 1000;
const INPUTS_TIMEOUT_MS = 10000;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let sc = null;
let attempt = 0;
let retryTimer = null;
let connected = false;

// The websocket lives beside the page, so the page works under /user/<name>/<lab>/console/.
function websocketUrl() {
  const url = new URL('websockify', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  return url.href;
}

function setStatus(state, text) {
  const el = $('conn-status');
  el.className = 'status status-' + state;
  el.textContent = text;
  connected = state === 'connected';
  $('btn-cad').disabled = !connected;
  $('btn-paste').disabled = !connected;
  document.body.dataset.console = state;
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  if (sc) { try { sc.stop(); } catch (e) { /* already closed */ } }
  setStatus('connecting', attempt ? `Reconnecting (try ${attempt + 1})…` : 'Connecting…');
  try {
    sc = new SpiceHtml5.SpiceMainConn({
      uri: websocketUrl(),
      screen_id: 'spice-screen',
      message_id: 'message-div',
      password: '',
      onerror: onError,
      onsuccess: onConnected,
      onagent: onAgent,
    });
    window.spice_connection = sc;
  } catch (e) {
    onError(e);
  }
}

// spice-html5 reports success when the main channel is up; the inputs channel links a
// moment later. "Connected" means keys and paste work, so wait for inputs too.
const inputsReady = () => Boolean(sc && sc.inputs && sc.inputs.state === 'ready');

async function waitForInputs(timeoutMs) {
  for (let waited = 0; !inputsReady(); waited += 50) {
    if (waited >= timeoutMs) return false;
    await sleep(50);
  }
  return true;
}

async function onConnected() {
  const conn = sc;
  if (!(await waitForInputs(INPUTS_TIMEOUT_MS))) {
    if (conn === sc) onError(new Error('keyboard channel did not open'));
    return;
  }
  if (conn !== sc) return;  // a reconnect replaced this session meanwhile
  attempt = 0;
  setStatus('connected', 'Connected');
}

function onAgent(conn) {
  window.addEventListener('resize', SpiceHtml5.handle_resize);
  SpiceHtml5.resize_helper(conn);
}

function onError(e) {
  if (sc) { try { sc.stop(); } catch (err) { /* ignore */ } }
  const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  attempt += 1;
  const reason = e && e.message ? e.message : 'connection lost';
  setStatus('disconnected', `Disconnected (${reason}) — retrying in ${Math.round(delay / 1000)} s`);
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, delay);
}

// --- paste as typing -------------------------------------------------------------------

function sendKey(code, down) {
  const key = down ? new Messages.SpiceMsgcKeyDown() : new Messages.SpiceMsgcKeyUp();
  key.code = down ? code : (code | 0x80);
  const msg = new Messages.SpiceMiniData();
  msg.build_msg(down ? Constants.SPICE_MSGC_INPUTS_KEY_DOWN : Constants.SPICE_MSGC_INPUTS_KEY_UP, key);
  sc.inputs.send_msg(msg);
}

export async function typeText(text, onProgress = () => {}) {
  const { keys, skipped } = keysFor(text);
  for (let i = 0; i < keys.length; i++) {
    if (!inputsReady() && !(await waitForInputs(INPUTS_TIMEOUT_MS))) {
      throw new Error('console not connected');
    }
    const { code, shift } = keys[i];
    if (shift) sendKey(SHIFT, true);
    sendKey(code, true);
    await sleep(KEY_DELAY_MS);
    sendKey(code, false);
    if (shift) sendKey(SHIFT, false);
    await sleep(KEY_DELAY_MS);
    onProgress(i + 1, keys.length);
  }
  return { typed: keys.length, skipped };
}
window.blabsTypeText = typeText;

function togglePaste(show) {
  const panel = $('paste-panel');
  panel.hidden = !show;
  $('btn-paste').setAttribute('aria-expanded', String(show));
  if (show) $('paste-text').focus(); else focusScreen();
}

function focusScreen() {
  const canvas = document.querySelector('#spice-screen canvas');
  if (canvas) canvas.focus();
}

async function onPasteSubmit(event) {
  event.preventDefault();
  const progress = $('paste-progress');
  const button = $('btn-paste-send');
  button.disabled = true;
  try {
    const { typed, skipped } = await typeText($('paste-text').value, (done, total) => {
      progress.textContent = `Typing ${done}/${total}…`;
    });
    progress.textContent = `Typed ${typed} characters` +
      (skipped ? `; skipped ${skipped} not on a US keyboard` : '') + '.';
    focusScreen();
  } catch (e) {
    progress.textContent = `Stopped: ${e.message}`;
  } finally {
    button.disabled = false;
  }
}

// --- status.json: lab name, Stop link, banners -----------------------------------------

let stopUrl = null;

function renderStatus(status) {
  if (status.lab_name) {
    $('lab-name').textContent = status.lab_name;
    document.title = `${status.lab_name} — Lab console`;
  }
  stopUrl = status.stop_url || null;
  $('btn-stop').disabled = !stopUrl;
  const banners = $('banners');
  banners.replaceChildren(...(status.banners || []).map((b) => {
    const div = document.createElement('div');
    div.className = 'banner banner-' + (b.level === 'warning' ? 'warning' : 'info');
    div.textContent = b.text;  // text, never HTML
    return div;
  }));
}

async function pollStatus() {
  try {
    const response = await fetch('status.json', { cache: 'no-store', credentials: 'same-origin' });
    if (response.ok) renderStatus(await response.json());
  } catch (e) {
    /* the relay may be restarting; the next poll tries again */
  }
}

// --- wiring ------------------------------------------------------------------------------

$('btn-cad').addEventListener('click', () => { SpiceHtml5.sendCtrlAltDel(sc); focusScreen(); });
$('btn-paste').addEventListener('click', () => togglePaste($('paste-panel').hidden));
$('btn-paste-cancel').addEventListener('click', () => togglePaste(false));
$('paste-panel').addEventListener('submit', onPasteSubmit);
$('btn-fullscreen').addEventListener('click', () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else document.documentElement.requestFullscreen().then(focusScreen).catch(() => {});
});
$('btn-reconnect').addEventListener('click', () => {
  attempt = 0;
  if (sc) { try { sc.stop(); } catch (e) { /* already closed */ } sc = null; }
  setStatus('connecting', 'Reconnecting…');
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, SETTLE_MS);
});
$('btn-stop').addEventListener('click', () => {
  // The top window: the console may sit in a JupyterLab tab's iframe.
  if (stopUrl) (window.top || window).location.href = stopUrl;
});

pollStatus();
setInterval(pollStatus, STATUS_POLL_MS);
connect();
