// The inspector: a hash-routed page over the /v1 API.
//
//   #/endpoints[?cursor=]                      endpoints with their health
//   #/endpoints/<id>[?status=&from=&to=&cursor=] one endpoint, its actions and deliveries
//   #/deliveries/<id>                          one delivery, its attempts, request and response
//   #/events/<id>                              one event and its deliveries
//
// Everything from the API is untrusted (producers choose payloads, receivers choose response
// bodies): it reaches the page through text nodes only (see dom.js).

import {ApiError, apiKey, call, signIn, signOut, withQuery} from './api.js';
import {button, h, link, replace, when} from './dom.js';

const $ = (id) => document.getElementById(id);
const view = () => $('view');

const STATUSES = ['pending', 'retrying', 'delivered', 'dead_lettered', 'failed'];
const PAGE_SIZES = [5, 20, 50, 200];

// ---- messages ----------------------------------------------------------------------------

function showError(err) {
  const e = err instanceof ApiError ? err : new ApiError(0, 'CLIENT_ERROR', String(err));
  $('error-code').textContent = e.code;
  $('error-message').textContent = e.message;
  $('error').hidden = false;
}

function notice(text) {
  $('notice').textContent = text;
  $('notice').hidden = false;
}

function clearMessages() {
  $('error').hidden = true;
  $('notice').hidden = true;
}

/** Runs an action, showing the API's error if it fails; resolves to its value or undefined. */
async function attempt(action) {
  clearMessages();
  try {
    return await action();
  } catch (e) {
    showError(e);
    return undefined;
  }
}

// ---- routing -----------------------------------------------------------------------------

function parseRoute() {
  const raw = location.hash.replace(/^#/, '') || '/endpoints';
  const [path, query] = raw.split('?', 2);
  return {parts: path.split('/').filter(Boolean).map(decodeURIComponent),
          params: new URLSearchParams(query || '')};
}

function go(route) {
  if (location.hash === '#' + route) render();
  else location.hash = route;
}

let generation = 0;

async function render() {
  const signedIn = apiKey() !== null;
  $('sign-in').hidden = signedIn;
  $('nav').hidden = !signedIn;
  if (!signedIn) {
    replace(view());
    $('api-key').focus();
    return;
  }
  const mine = ++generation;
  const {parts, params} = parseRoute();
  replace(view(), h('p', {class: 'loading'}, 'Loading…'));
  let page;
  try {
    if (parts[0] === 'endpoints' && parts.length === 1) page = await endpointsPage(params);
    else if (parts[0] === 'endpoints' && parts.length === 2) page = await endpointPage(parts[1], params);
    else if (parts[0] === 'deliveries' && parts.length === 2) page = await deliveryPage(parts[1]);
    else if (parts[0] === 'events' && parts.length === 2) page = await eventPage(parts[1]);
    else page = h('p', {}, 'No such page. ', link('Endpoints', '/endpoints'));
  } catch (e) {
    if (mine !== generation) return;
    showError(e);
    page = h('p', {class: 'muted'}, 'Nothing to show.');
  }
  if (mine === generation) replace(view(), page);
}

// ---- shared pieces -----------------------------------------------------------------------

function successRate(stats) {
  const settled = stats.delivered + stats.failed;
  if (settled === 0) return '—';
  return (100 * stats.delivered / settled).toFixed(1) + ' %';
}

function stateBadge(enabled) {
  return h('span', {class: enabled ? 'badge ok' : 'badge off'}, enabled ? 'enabled' : 'disabled');
}

function statusBadge(status) {
  const cls = {delivered: 'ok', pending: 'wait', retrying: 'warn', dead_lettered: 'bad'}[status] || '';
  return h('span', {class: 'badge ' + cls, 'data-status': status}, status);
}

function facts(rows) {
  return h('dl', {class: 'facts'}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function table(headings, rows, attrs) {
  return h('table', attrs || {},
    h('thead', {}, h('tr', {}, headings.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows));
}

function deliveryRows(deliveries) {
  return deliveries.map((d) => h('tr', {'data-delivery': d.id},
    h('td', {}, link(d.id, '/deliveries/' + encodeURIComponent(d.id), {class: 'mono'})),
    h('td', {}, link(d.event_id, '/events/' + encodeURIComponent(d.event_id), {class: 'mono'})),
    h('td', {}, d.event_type),
    h('td', {}, statusBadge(d.status)),
    h('td', {class: 'num'}, d.attempts),
    h('td', {class: 'num'}, d.last_status_code ?? '—'),
    h('td', {class: 'time'}, when(d.last_attempt_at)),
    h('td', {class: 'time'}, when(d.next_attempt_at))));
}

const DELIVERY_HEADINGS = ['Delivery', 'Event', 'Type', 'Status', 'Attempts', 'Last HTTP',
  'Last attempt', 'Next attempt'];

// ---- endpoints ---------------------------------------------------------------------------

async function endpointsPage(params) {
  const list = await call('GET', withQuery('/v1/endpoints', {cursor: params.get('cursor')}));
  // The list has no stats; each endpoint's own read has them.
  const full = await Promise.all(list.data.map((e) =>
    call('GET', '/v1/endpoints/' + encodeURIComponent(e.id))));
  const rows = full.map((e) => h('tr', {'data-endpoint': e.id},
    h('td', {}, link(e.name, '/endpoints/' + encodeURIComponent(e.id))),
    h('td', {class: 'mono wrap'}, e.url),
    h('td', {}, stateBadge(e.enabled)),
    h('td', {class: 'num', 'data-field': 'success-rate'}, successRate(e.stats)),
    h('td', {class: 'num'}, e.stats.delivered),
    h('td', {class: 'num'}, e.stats.failed),
    h('td', {class: 'num'}, e.stats.retrying),
    h('td', {class: 'time'}, when(e.stats.last_delivery_at))));
  return h('div', {id: 'endpoints-page'},
    h('h1', {}, 'Endpoints'),
    rows.length ? table(['Name', 'URL', 'State', 'Success rate', 'Delivered', 'Dead-lettered',
      'Retrying', 'Last delivery'], rows, {id: 'endpoints'})
      : h('p', {class: 'muted'}, 'No endpoints yet.'),
    pager(params.get('cursor'), list.next_cursor, (c) => withQuery('/endpoints', {cursor: c})));
}

function pager(current, next, routeFor) {
  return h('div', {class: 'pager'},
    current ? link('First page', routeFor(null), {id: 'page-first'}) : null,
    next ? link('Next page', routeFor(next), {id: 'page-next'}) : null);
}

// ---- one endpoint ------------------------------------------------------------------------

/** `datetime-local` value (taken as UTC) to RFC 3339, and back. */
const toRfc3339 = (v) => (v ? v + ':00Z' : '');
const toLocalInput = (t) => (t ? t.slice(0, 16) : '');

async function endpointPage(id, params) {
  const path = '/v1/endpoints/' + encodeURIComponent(id);
  const filter = {status: params.get('status') || '', from: params.get('from') || '',
                  to: params.get('to') || '', limit: params.get('limit') || ''};
  const [ep, types, page] = await Promise.all([
    call('GET', path),
    call('GET', '/v1/event-types'),
    call('GET', withQuery(path + '/deliveries', Object.assign({cursor: params.get('cursor')}, filter))),
  ]);
  const routeFor = (f, cursor) => withQuery('/endpoints/' + encodeURIComponent(id),
    Object.assign({}, f, {cursor}));

  const toggle = button(ep.enabled ? 'Disable' : 'Enable', {id: 'toggle-enabled'}, async () => {
    const done = await attempt(() => call('PATCH', path, {enabled: !ep.enabled}));
    if (done) {
      await render();
      notice(done.enabled ? 'Endpoint enabled.' : 'Endpoint disabled.');
    }
  });

  const typeSelect = h('select', {id: 'test-type', 'aria-label': 'Event type'},
    (types.data || []).map((t) => h('option', {value: t}, t)));
  const test = button('Send test event', {id: 'send-test'}, async () => {
    const out = await attempt(() => call('POST', path + '/test', {event_type: typeSelect.value}));
    if (out) {
      const how = out.status_code ? 'HTTP ' + out.status_code : out.error;
      notice((out.delivered ? 'Test event delivered' : 'Test event not delivered') + ': ' + how +
        ' in ' + out.latency_ms + ' ms (' + out.event_id + ').');
    }
  });

  const rotate = button('Rotate secret', {id: 'rotate-secret'}, async () => {
    const out = await attempt(() => call('POST', path + '/rotate-secret'));
    if (out) showSecret(out.secret, out.previous_secret_valid_until);
  });

  const statusSelect = h('select', {id: 'filter-status', name: 'status'},
    h('option', {value: ''}, 'any status'),
    STATUSES.map((s) => h('option', {value: s, selected: s === filter.status}, s)));
  const from = h('input', {id: 'filter-from', type: 'datetime-local', value: toLocalInput(filter.from)});
  const to = h('input', {id: 'filter-to', type: 'datetime-local', value: toLocalInput(filter.to)});
  const limit = h('select', {id: 'filter-limit'},
    PAGE_SIZES.map((n) => h('option', {value: n, selected: String(n) === (filter.limit || '50')}, n)));
  const form = h('form', {id: 'delivery-filter', class: 'inline'},
    h('label', {for: 'filter-status'}, 'Status'), statusSelect,
    h('label', {for: 'filter-from'}, 'From (UTC)'), from,
    h('label', {for: 'filter-to'}, 'To (UTC)'), to,
    h('label', {for: 'filter-limit'}, 'Per page'), limit,
    h('button', {type: 'submit', id: 'filter-apply'}, 'Apply'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go(routeFor({status: statusSelect.value, from: toRfc3339(from.value), to: toRfc3339(to.value),
                 limit: limit.value === '50' ? '' : limit.value}));
  });

  return h('div', {id: 'endpoint-page', 'data-endpoint': ep.id},
    h('p', {class: 'crumbs'}, link('Endpoints', '/endpoints'), ' / ', ep.name),
    h('h1', {}, ep.name),
    facts([
      ['Id', h('span', {class: 'mono'}, ep.id)],
      ['URL', h('span', {class: 'mono wrap'}, ep.url)],
      ['State', h('span', {id: 'endpoint-state'}, stateBadge(ep.enabled))],
      ['Success rate', successRate(ep.stats)],
      ['Delivered', ep.stats.delivered],
      ['Dead-lettered', ep.stats.failed],
      ['Retrying', ep.stats.retrying],
      ['Last delivery', when(ep.stats.last_delivery_at)],
      ['Format', ep.format.preset + ' (' + ep.format.signature_scheme + ')'],
    ]),
    h('div', {class: 'actions'}, toggle, typeSelect, test, rotate),
    h('h2', {}, 'Deliveries'),
    form,
    page.data.length
      ? table(DELIVERY_HEADINGS, deliveryRows(page.data), {id: 'deliveries'})
      : h('p', {class: 'muted', id: 'no-deliveries'}, 'No deliveries match.'),
    pager(params.get('cursor'), page.next_cursor, (c) => routeFor(filter, c)));
}

function showSecret(secret, until) {
  const dialog = $('secret-dialog');
  $('secret-value').textContent = secret;
  $('secret-until').textContent = until
    ? 'The previous secret keeps working until ' + when(until) + '.' : '';
  $('secret-copied').hidden = true;
  dialog.showModal();
}

async function copySecret() {
  const text = $('secret-value').textContent;
  try {
    await navigator.clipboard.writeText(text);
    $('secret-copied').hidden = false;
  } catch (e) {
    // Without clipboard access, leave the secret selected for a manual copy.
    const range = document.createRange();
    range.selectNodeContents($('secret-value'));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    showError(new ApiError(0, 'CLIPBOARD', 'copy it by hand: ' + e.message));
  }
}

function closeSecret() {
  // Shown once: nothing of it stays in the page.
  $('secret-value').textContent = '';
  $('secret-dialog').close();
}

// ---- one delivery ------------------------------------------------------------------------

async function deliveryPage(id) {
  const path = '/v1/deliveries/' + encodeURIComponent(id);
  const d = await call('GET', path);
  // Read on its own, a delivery's `attempts` is the list of them (in lists, their count).
  const tried = d.attempts.length;
  const retry = button('Retry now', {id: 'retry'}, async () => {
    const out = await attempt(() => call('POST', path + '/retry'));
    if (!out) return;
    notice('Retry scheduled.');
    // Follow the retry until its attempt is recorded.
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const now = await call('GET', path).catch(() => null);
      if (location.hash !== '#/deliveries/' + encodeURIComponent(id)) return;
      if (now && now.attempts.length > tried) break;
    }
    await render();
    notice('Retry done.');
  });
  const attempts = [...d.attempts].reverse().map(attemptView);
  return h('div', {id: 'delivery-page', 'data-delivery': d.id},
    h('p', {class: 'crumbs'}, link('Endpoints', '/endpoints'), ' / ',
      link('Endpoint', '/endpoints/' + encodeURIComponent(d.endpoint_id)), ' / ', d.id),
    h('h1', {}, 'Delivery ', h('span', {class: 'mono'}, d.id)),
    facts([
      ['Status', statusBadge(d.status)],
      ['Event', link(d.event_id, '/events/' + encodeURIComponent(d.event_id), {class: 'mono'})],
      ['Type', d.event_type],
      ['Tenant', d.tenant],
      ['Attempts', h('span', {id: 'attempt-count'}, tried)],
      ['Created', when(d.created_at)],
      ['Next attempt', when(d.next_attempt_at)],
    ]),
    h('div', {class: 'actions'}, retry,
      button('Refresh', {id: 'refresh'}, () => attempt(render))),
    h('h2', {}, 'Attempts'),
    attempts.length ? attempts : h('p', {class: 'muted'}, 'No attempt yet.'));
}

function headersTable(headers) {
  return table(['Header', 'Value'], headers.map((x) => h('tr', {},
    h('td', {class: 'mono'}, x.name), h('td', {class: 'mono wrap'}, x.value))), {class: 'headers'});
}

function attemptView(a) {
  const outcome = a.status_code ? 'HTTP ' + a.status_code : a.error;
  const req = a.request;
  return h('section', {class: 'attempt ' + (a.error ? 'failed' : 'ok'), 'data-attempt': a.number},
    h('h3', {}, 'Attempt ' + a.number + ' · ' + outcome + ' · ' + a.latency_ms + ' ms · ' + when(a.at)),
    h('div', {class: 'exchange'},
      h('div', {class: 'request'},
        h('h4', {}, 'Request'),
        req ? [
          h('p', {class: 'mono wrap'}, req.method + ' ' + req.url),
          req.endpoint_updated_since
            ? h('p', {class: 'note'}, 'Rebuilt with the endpoint\u2019s current settings, ' +
                'which changed after this attempt.') : null,
          headersTable(req.headers),
          // As sent, byte for byte: a reformatted body would not be the one that was signed.
          h('pre', {class: 'body request-body'}, req.body),
        ] : h('p', {class: 'muted'}, 'No request was sent (' + a.error + ').')),
      h('div', {class: 'response'},
        h('h4', {}, 'Response'),
        facts([
          ['Status', h('span', {class: 'response-status'}, a.status_code ?? 'none')],
          ['Latency', a.latency_ms + ' ms'],
          ['Error', a.error ? a.error + (a.error_detail ? ': ' + a.error_detail : '') : '—'],
        ]),
        h('pre', {class: 'body response-body'}, a.response_body || '(empty body)'))));
}

// ---- one event ---------------------------------------------------------------------------

async function eventPage(id) {
  const ev = await call('GET', '/v1/events/' + encodeURIComponent(id));
  return h('div', {id: 'event-page', 'data-event': ev.id},
    h('h1', {}, 'Event ', h('span', {class: 'mono'}, ev.id)),
    facts([
      ['Type', ev.type],
      ['Tenant', ev.tenant],
      ['Created', when(ev.created_at)],
    ]),
    h('h2', {}, 'Data'),
    h('pre', {class: 'body', id: 'event-data'}, JSON.stringify(ev.data, null, 2)),
    h('h2', {}, 'Deliveries'),
    (ev.deliveries || []).length
      ? table(DELIVERY_HEADINGS, deliveryRows(ev.deliveries), {id: 'event-deliveries'})
      : h('p', {class: 'muted'}, 'No deliveries.'));
}

// ---- start -------------------------------------------------------------------------------

function start() {
  $('sign-in-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = $('api-key').value.trim();
    const ok = await attempt(() => call('GET', '/v1/endpoints?limit=1', undefined, key));
    if (ok) {
      signIn(key);
      $('api-key').value = '';
      go('/endpoints');
    }
  });
  $('sign-out').addEventListener('click', () => {
    signOut();
    clearMessages();
    generation++;
    history.replaceState(null, '', location.pathname);
    render();
  });
  $('event-lookup').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('event-id').value.trim();
    if (id) go('/events/' + encodeURIComponent(id));
  });
  $('secret-copy').addEventListener('click', copySecret);
  $('secret-close').addEventListener('click', closeSecret);
  $('secret-dialog').addEventListener('cancel', (ev) => {
    ev.preventDefault();
    closeSecret();
  });
  window.addEventListener('hashchange', () => {
    clearMessages();
    render();
  });
  render();
}

start();
