// cotd web console. Plain JavaScript: the live picture comes over one
// WebSocket (/web/ws) as JSON messages; everything else is fetched from
// /web/api/. Text from clients is only ever set with textContent.
'use strict';
(function () {
  // ATAK's team colours (<__group name>).
  const TEAM = {
    'White': '#ffffff', 'Yellow': '#ffeb3b', 'Orange': '#ff9800', 'Magenta': '#e040fb',
    'Red': '#f44336', 'Maroon': '#800000', 'Purple': '#9c27b0', 'Dark Blue': '#1a237e',
    'Blue': '#2196f3', 'Cyan': '#00bcd4', 'Teal': '#009688', 'Green': '#4caf50',
    'Dark Green': '#1b5e20', 'Brown': '#795548',
  };
  const NO_TEAM = '#607d8b';

  const state = {
    cfg: null,
    clients: new Map(), // connection id -> client
    markers: new Map(), // connection id -> {marker, trail}
    samples: [],
    confirming: null, // {id, until}: a disconnect button waiting for its second click
    fitted: false,
    dropped: 0,
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('data-')) e.setAttribute(k, v);
        else e[k] = v;
      }
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  function teamColour(pos) { return (pos && TEAM[pos.team]) || NO_TEAM; }

  function fmtBytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KiB';
    return (n / (1 << 20)).toFixed(1) + ' MiB';
  }
  function fmtTime(ms) { return ms ? new Date(ms).toLocaleString() : ''; }
  function fmtNum(v) { return v == null ? 'n/a' : (Math.round(v * 100) / 100).toString(); }

  // ---- map ----
  const map = L.map('map', { worldCopyJump: true, zoomControl: true }).setView([20, 0], 2);
  L.control.scale().addTo(map);

  // A plain grid for air-gapped networks: each tile draws its edges and
  // the coordinates of its north-west corner, so the lines halve with each
  // zoom level and nothing is fetched.
  const Grid = L.GridLayer.extend({
    createTile: function (coords) {
      const size = this.getTileSize();
      const c = document.createElement('canvas');
      c.width = size.x; c.height = size.y;
      const g = c.getContext('2d');
      g.fillStyle = '#f4f1ea'; g.fillRect(0, 0, size.x, size.y);
      g.strokeStyle = '#e6e0d2'; g.lineWidth = 1;
      g.beginPath();
      for (let i = 1; i < 4; i++) {
        const x = Math.round(size.x * i / 4) + 0.5, y = Math.round(size.y * i / 4) + 0.5;
        g.moveTo(x, 0); g.lineTo(x, size.y); g.moveTo(0, y); g.lineTo(size.x, y);
      }
      g.stroke();
      g.strokeStyle = '#c4bba5';
      g.strokeRect(0.5, 0.5, size.x, size.y);
      const nw = map.unproject(coords.scaleBy(size), coords.z);
      const digits = Math.max(0, Math.min(5, Math.floor(coords.z / 3)));
      g.fillStyle = '#8d846f'; g.font = '10px sans-serif';
      g.fillText(nw.lat.toFixed(digits) + ', ' + L.Util.wrapNum(nw.lng, [-180, 180], true).toFixed(digits), 4, 12);
      return c;
    },
  });

  function startMap(cfg) {
    if (cfg.tiles) {
      L.tileLayer(cfg.tiles, { maxZoom: 19, attribution: cfg.tilesAttribution || '' }).addTo(map);
    } else {
      new Grid({ maxZoom: 19 }).addTo(map);
      map.attributionControl.addAttribution('plain grid (no tiles configured)');
    }
  }

  // The marker: an arrow pointing along the course, or a dot without one,
  // in the team colour, with the callsign beside it.
  function icon(c) {
    const colour = teamColour(c.pos);
    const svgNS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(svgNS, 'svg');
    svg.setAttribute('width', '24'); svg.setAttribute('height', '24'); svg.setAttribute('viewBox', '-12 -12 24 24');
    let shape;
    if (c.pos.course != null) {
      shape = document.createElementNS(svgNS, 'path');
      shape.setAttribute('d', 'M0,-11 L8,9 L0,4 L-8,9 Z');
      shape.setAttribute('transform', 'rotate(' + c.pos.course + ')');
    } else {
      shape = document.createElementNS(svgNS, 'circle');
      shape.setAttribute('r', '7');
    }
    shape.setAttribute('fill', colour);
    shape.setAttribute('stroke', '#1d2330'); shape.setAttribute('stroke-width', '1.5');
    svg.append(shape);
    const div = el('div', {
      class: 'unit', 'data-conn': String(c.id), 'data-uid': c.uid, 'data-callsign': c.callsign,
      'data-lat': String(c.pos.lat), 'data-lon': String(c.pos.lon), 'data-team': c.pos.team || '',
    }, svg, el('span', { class: 'label', text: c.callsign || c.uid }));
    return L.divIcon({ html: div, className: '', iconSize: [24, 24], iconAnchor: [12, 12], popupAnchor: [0, -10] });
  }

  function popup(c) {
    const p = c.pos;
    const dl = el('dl', { class: 'popup' });
    const row = (k, v) => dl.append(el('dt', { text: k }), el('dd', { text: v }));
    row('Callsign', c.callsign || '—');
    row('UID', c.uid);
    row('Team', (p.team || '—') + (p.role ? ' / ' + p.role : ''));
    row('Type', p.type);
    row('Position', p.lat.toFixed(5) + ', ' + p.lon.toFixed(5));
    row('Altitude', p.hae >= 9999999 ? 'unknown' : p.hae.toFixed(0) + ' m HAE');
    row('Course', p.course == null ? 'unknown' : p.course.toFixed(0) + '°');
    row('Speed', p.speed == null ? 'unknown' : p.speed.toFixed(1) + ' m/s (' + (p.speed * 3.6).toFixed(1) + ' km/h)');
    row('Reported', fmtTime(p.at));
    return dl;
  }

  function drawClient(c) {
    let m = state.markers.get(c.id);
    if (!c.pos) {
      if (m) { m.marker.remove(); m.trail.remove(); state.markers.delete(c.id); }
      return;
    }
    const ll = [c.pos.lat, c.pos.lon];
    const trail = (c.trail && c.trail.length) ? c.trail : [ll];
    if (!m) {
      m = {
        marker: L.marker(ll, { icon: icon(c), title: c.callsign || c.uid }).addTo(map),
        trail: L.polyline(trail, { color: teamColour(c.pos), weight: 3, opacity: 0.7 }).addTo(map),
      };
      m.marker.bindPopup(() => popup(state.clients.get(c.id) || c));
      state.markers.set(c.id, m);
    } else {
      m.marker.setLatLng(ll);
      m.marker.setIcon(icon(c));
      m.trail.setLatLngs(trail);
      m.trail.setStyle({ color: teamColour(c.pos) });
    }
  }

  function fitOnce() {
    if (state.fitted || state.markers.size === 0) return;
    const b = L.latLngBounds([...state.markers.values()].map(m => m.marker.getLatLng()));
    map.fitBounds(b.pad(0.5), { maxZoom: 14 });
    state.fitted = true;
  }

  // ---- state ----
  function upsert(c) {
    const old = state.clients.get(c.id);
    if (old && old.pos && c.pos && c.pos.at < old.pos.at) { c.pos = old.pos; c.trail = old.trail; } // an older report arrived late
    if (old && !c.pos && old.pos) { c.pos = old.pos; c.trail = old.trail; }
    state.clients.set(c.id, c);
    drawClient(c);
  }

  function removeClient(id) {
    state.clients.delete(id);
    const m = state.markers.get(id);
    if (m) { m.marker.remove(); m.trail.remove(); state.markers.delete(id); }
  }

  function handle(msg) {
    switch (msg.t) {
      case 'snapshot': {
        const live = new Set((msg.clients || []).map(c => c.id));
        for (const id of [...state.clients.keys()]) if (!live.has(id)) removeClient(id);
        for (const c of msg.clients || []) { state.clients.delete(c.id); upsert(c); }
        state.dropped = msg.dropped || 0;
        $('chat-log').replaceChildren();
        for (const ch of msg.chats || []) addChat(ch);
        fitOnce();
        break;
      }
      case 'join': case 'sa':
        upsert(msg.c); fitOnce(); break;
      case 'leave':
        removeClient(msg.id); break;
      case 'chat':
        addChat(msg.chat); break;
      case 'stats':
        for (const [id, bytesIn, queued, seen] of msg.stats || []) {
          const c = state.clients.get(id);
          if (c) { c.bytesIn = bytesIn; c.queued = queued; c.lastSeen = seen; }
        }
        break;
      case 'sample':
        addSample(msg.sample); return;
    }
    scheduleRender();
  }

  // The table is rebuilt at most twice a second, however fast positions
  // arrive: with thousands of clients a rebuild per update would make the
  // page the slowest part of the picture. Markers move at once.
  let renderTimer = null, lastRender = 0;
  function scheduleRender() {
    if (renderTimer) return;
    renderTimer = setTimeout(() => {
      renderTimer = null;
      lastRender = Date.now();
      renderClients(); renderContacts(); renderSummary();
    }, Math.max(0, lastRender + 500 - Date.now()));
  }

  function renderSummary() {
    const onMap = state.markers.size;
    $('summary').textContent = state.clients.size + ' connected · ' + onMap + ' on the map' +
      (state.dropped ? ' · this page missed ' + state.dropped + ' updates' : '');
  }

  // ---- clients table ----
  function renderClients() {
    const rows = [];
    const now = Date.now();
    if (state.confirming && state.confirming.until < now) state.confirming = null;
    for (const c of state.clients.values()) {
      const btn = el('button', { class: 'danger', type: 'button', 'data-action': 'disconnect', 'data-conn': String(c.id), text: 'Disconnect' });
      if (state.confirming && state.confirming.id === c.id) { btn.classList.add('confirm'); btn.textContent = 'Confirm disconnect'; }
      const swatch = el('span', { class: 'swatch' });
      swatch.style.background = teamColour(c.pos);
      rows.push(el('tr', { 'data-conn': String(c.id), 'data-uid': c.uid },
        el('td', null, swatch, c.callsign || '—'),
        el('td', { text: c.uid }),
        el('td', { text: c.identity || 'anonymous' }),
        el('td', { text: c.in.join(', ') + ' / ' + c.out.join(', ') }),
        el('td', { text: c.remote }),
        el('td', { text: c.listener }),
        el('td', { text: c.protocol + (c.state && c.state !== 'established' ? ' (' + c.state + ')' : '') }),
        el('td', { text: fmtTime(c.since) }),
        el('td', { class: 'num', text: fmtBytes(c.bytesIn) }),
        el('td', { class: 'num', text: fmtBytes(c.queued) }),
        el('td', null, btn)));
    }
    $('clients').tBodies[0].replaceChildren(...rows);
    $('client-count').textContent = '(' + state.clients.size + ')';
  }

  $('clients').addEventListener('click', async (e) => {
    const btn = e.target.closest('button[data-action="disconnect"]');
    if (!btn) return;
    const id = Number(btn.getAttribute('data-conn'));
    // Two clicks: the first arms the button, the second disconnects.
    if (!state.confirming || state.confirming.id !== id) {
      state.confirming = { id: id, until: Date.now() + 5000 };
      renderClients();
      return;
    }
    state.confirming = null;
    try {
      await post('/web/api/disconnect', { id: id });
      $('clients-error').textContent = '';
    } catch (err) {
      $('clients-error').textContent = err.message;
    }
    renderClients();
  });

  // getJSON fetches path (with init, for a POST) and returns its JSON body,
  // or throws the server's error message.
  async function getJSON(path, init) {
    const r = await fetch(path, init);
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.error || (path + ': ' + r.status));
    return j;
  }

  function post(path, body) {
    return getJSON(path, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
  }

  // ---- chat ----
  function addChat(ch) {
    const log = $('chat-log');
    log.append(el('li', null,
      el('span', { class: 'who', text: ch.from || ch.fromUid || '?' }),
      el('span', { class: 'room', text: '→ ' + (ch.room || 'All Chat Rooms') }),
      el('span', { class: 'at', text: new Date(ch.at).toLocaleTimeString() }),
      el('div', { class: 'text', text: ch.text })));
    while (log.children.length > 200) log.firstChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  const ALL = 'All Chat Rooms';

  function renderContacts() {
    const sel = $('chat-to');
    const want = [...new Set([...state.clients.values()].map(c => c.callsign).filter(Boolean))].sort();
    const have = [...sel.options].slice(1).map(o => o.value);
    if (want.join('\n') === have.join('\n')) return;
    const cur = sel.value;
    sel.replaceChildren(el('option', { value: ALL, text: ALL }), ...want.map(cs => el('option', { value: cs, text: cs })));
    sel.value = want.includes(cur) ? cur : ALL;
  }

  $('chat-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $('chat-text').value;
    if (!text) return;
    try {
      await post('/web/api/chat', { text: text, to: $('chat-to').value });
      $('chat-text').value = '';
      $('chat-error').textContent = '';
    } catch (err) {
      $('chat-error').textContent = err.message;
    }
  });

  // ---- charts ----
  const SERIES = [
    { key: 'connections', unit: '' },
    { key: 'deliveries', unit: '/s' },
    { key: 'drops', unit: '' },
    { key: 'handshakes', unit: '' },
  ];

  function addSample(s) {
    state.samples.push(s);
    const from = Date.now() - state.cfg.history;
    while (state.samples.length && state.samples[0].at < from) state.samples.shift();
    renderCharts();
  }

  function renderCharts() {
    const svgNS = 'http://www.w3.org/2000/svg';
    const now = Date.now();
    const from = now - state.cfg.history;
    for (const { key, unit } of SERIES) {
      const svg = $('chart-' + key);
      const pts = state.samples.filter(s => s[key] != null);
      const top = Math.max(...pts.map(s => s[key]));
      const max = Math.max(1, top); // the scale: a flat zero line sits at the bottom
      const line = document.createElementNS(svgNS, 'polyline');
      line.setAttribute('points', pts.map(s =>
        ((s.at - from) / state.cfg.history * 300).toFixed(1) + ',' + (98 - s[key] / max * 94).toFixed(1)).join(' '));
      const grid = [25, 50, 75].map(y => {
        const l = document.createElementNS(svgNS, 'line');
        l.setAttribute('x1', '0'); l.setAttribute('x2', '300'); l.setAttribute('y1', String(y)); l.setAttribute('y2', String(y));
        return l;
      });
      svg.replaceChildren(...grid, line);
      svg.setAttribute('data-points', String(pts.length));
      const last = pts.length ? pts[pts.length - 1][key] : null;
      $('value-' + key).textContent = 'now ' + fmtNum(last) + unit + ' · max ' + fmtNum(pts.length ? top : null) + unit;
    }
  }

  // ---- users, groups and files ----
  async function loadUsers() {
    const users = await getJSON('/web/api/users');
    $('users').tBodies[0].replaceChildren(...users.map(u => el('tr', { 'data-user': u.name },
      el('td', { text: u.name }), el('td', { text: u.in.join(', ') }), el('td', { text: u.out.join(', ') }),
      el('td', { text: u.password ? 'password or certificate' : 'certificate' }),
      el('td', { text: u.disabled ? 'disabled' : 'enabled' }))));
    const groups = new Map();
    const add = (g, side, name) => {
      if (!groups.has(g)) groups.set(g, { in: [], out: [] });
      groups.get(g)[side].push(name);
    };
    for (const u of users) { u.in.forEach(g => add(g, 'in', u.name)); u.out.forEach(g => add(g, 'out', u.name)); }
    $('groups').tBodies[0].replaceChildren(...[...groups.keys()].sort().map(g => el('tr', { 'data-group': g },
      el('td', { text: g }), el('td', { text: groups.get(g).in.join(', ') }), el('td', { text: groups.get(g).out.join(', ') }))));
    $('users-panel').hidden = false;
  }

  async function loadFiles() {
    const files = await getJSON('/web/api/files');
    $('files').tBodies[0].replaceChildren(...files.map(f => el('tr', { 'data-file': f.id },
      el('td', { text: f.name }), el('td', { class: 'num', text: fmtBytes(f.size) }), el('td', { text: f.submitter }),
      el('td', { text: fmtTime(Date.parse(f.uploaded)) }),
      el('td', null, el('a', { href: '/web/api/files/' + encodeURIComponent(f.id), text: 'Download', download: f.name })))));
    $('files-panel').hidden = false;
  }

  // ---- the feed ----
  let backoff = 500;
  function connect() {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/web/ws');
    ws.onopen = () => {
      backoff = 500;
      setStatus(true);
      // Samples taken while the feed was down are in the history.
      if (state.reconnecting) getJSON('/web/api/history').then(h => { state.samples = h; renderCharts(); }).catch(() => {});
      state.reconnecting = true;
    };
    ws.onmessage = (e) => handle(JSON.parse(e.data));
    ws.onclose = () => {
      setStatus(false);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 15000);
    };
  }
  function setStatus(on, why) {
    const s = $('status');
    s.textContent = on ? 'live' : (why || 'disconnected, retrying');
    s.className = 'status ' + (on ? 'on' : 'off');
    document.body.setAttribute('data-live', on ? 'true' : 'false');
  }

  async function start() {
    state.cfg = await getJSON('/web/api/config');
    $('history-span').textContent = Math.round(state.cfg.history / 60000) + ' min';
    startMap(state.cfg);
    state.samples = await getJSON('/web/api/history');
    renderCharts();
    if (state.cfg.users) loadUsers().catch(err => { $('users-panel').hidden = false; $('users-panel').append(el('p', { class: 'error', text: err.message })); });
    if (state.cfg.files) loadFiles().catch(err => { $('files-panel').hidden = false; $('files-panel').append(el('p', { class: 'error', text: err.message })); });
    connect();
    setInterval(scheduleRender, 5000); // the table's counters and the disarmed buttons
  }
  start().catch(err => setStatus(false, 'cannot start: ' + err.message));
})();
