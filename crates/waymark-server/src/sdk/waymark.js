/*! Waymark tracker (Apache-2.0). Served by Waymark at /sdk/waymark.js; no dependencies, no build step.
 *
 * Snippet:
 *   <script>
 *   (function(w,d,n,u){w[n]=w[n]||function(){(w[n].q=w[n].q||[]).push(arguments)};
 *   var s=d.createElement('script');s.async=1;s.src=u;s.setAttribute('data-waymark-global',n);
 *   d.head.appendChild(s)})(window,document,'wm','https://waymark.example.com/sdk/waymark.js');
 *   wm('init','<deploymentId>');
 *   wm('pageview');
 *   </script>
 *
 * Commands (Genesys style): init(deploymentId, options), pageview(options), record(eventName, attributes),
 * identify([loginId,] traits), logout(), forms:track(selector, options), flush(), on(name, callback).
 * Options: apiBase, cookieName, cookieDomain, autotrackUrlChange (true), keepFragment (false),
 * scrollDepth ([25,50,75,100], [] = off), idleAfterSeconds (60, 0 = off), offers (true),
 * offerTimeoutSeconds (60), debug.
 */
(function () {
  'use strict';
  var w = window, d = document;
  var me = d.currentScript;
  var NAME = (me && me.getAttribute('data-waymark-global')) || 'wm';
  var queued = (w[NAME] && w[NAME].q) || [];
  if (w[NAME] && w[NAME].loaded) return;

  var cfg = null;           // set by init
  var buffer = [];          // events waiting to be sent
  var sending = false, attempt = 0, flushTimer = 0, retryTimer = 0;
  var sessionId = null, traits = null, lastUrl = null, firstPageview = true;
  var pingTimer = 0, pingEvery = 5000, pinging = false, lastBeacon = Date.now();
  var seen = {}, shown = null, listeners = {};
  var forms = [], scrollMarks = {}, idleTimer = 0, idleFired = false;

  function log() { if (cfg && cfg.debug && w.console) w.console.log.apply(w.console, ['[waymark]'].concat([].slice.call(arguments))); }

  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID();
    var b = new Uint8Array(16);
    w.crypto.getRandomValues(b);
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = [].map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // ---- first-party customer cookie -------------------------------------------------------------------------
  function readCookie() {
    var m = d.cookie.match(new RegExp('(?:^|; )' + cfg.cookieName + '=([A-Za-z0-9._-]{1,128})'));
    return m ? m[1] : null;
  }
  function writeCookie(id) {
    d.cookie = cfg.cookieName + '=' + id + '; path=/; max-age=31536000; SameSite=Lax' +
      (cfg.cookieDomain ? '; domain=' + cfg.cookieDomain : '') + (location.protocol === 'https:' ? '; Secure' : '');
  }
  function customerId() {
    var id = readCookie();
    if (!id) { id = uuid(); writeCookie(id); }
    return id;
  }

  // ---- events ----------------------------------------------------------------------------------------------
  function pageUrl() { return cfg.keepFragment ? location.href : location.href.split('#')[0]; }

  function typed(v) {
    if (v && typeof v === 'object' && 'value' in v) return v;
    var t = typeof v === 'number' ? (Math.floor(v) === v ? 'integer' : 'number') : typeof v === 'boolean' ? 'boolean' : 'string';
    return { dataType: t, value: t === 'string' ? String(v) : v };
  }

  function event(name, attrs, page) {
    var e = {
      customerCookieId: customerId(),
      eventName: name,
      page: { url: (page && page.location) || pageUrl(), title: (page && page.title) || d.title || '' },
      createdDate: new Date().toISOString(),
      clientEventId: uuid(),
      browser: { lang: navigator.language, viewWidth: w.innerWidth, viewHeight: w.innerHeight },
      device: { screenWidth: w.screen && w.screen.width, screenHeight: w.screen && w.screen.height }
    };
    if (d.documentElement.lang) e.page.lang = d.documentElement.lang;
    if (attrs) {
      e.attributes = {};
      Object.keys(attrs).slice(0, 50).forEach(function (k) {
        if (attrs[k] !== undefined && attrs[k] !== null) e.attributes[String(k).slice(0, 128)] = typed(attrs[k]);
      });
    }
    if (traits) { e.traits = traits; traits = null; }
    return e;
  }

  function enqueue(e) {
    buffer.push(e);
    idleFired = false;
    if (buffer.length >= 20) flush(); else if (!flushTimer) flushTimer = setTimeout(flush, 250);
  }

  function endpoint(path) { return cfg.base + '/api/v2/journey/deployments/' + encodeURIComponent(cfg.deploymentId) + path; }

  function flush() {
    clearTimeout(flushTimer); flushTimer = 0;
    if (sending || retryTimer || !buffer.length || !cfg) return;
    var batch = buffer.slice(0, 100);
    sending = true;
    // text/plain keeps this a simple CORS request (no preflight); the server accepts it as JSON.
    fetch(endpoint('/webevents'), { method: 'POST', body: JSON.stringify(batch), headers: { 'content-type': 'text/plain' }, keepalive: true, credentials: 'omit' })
      .then(function (r) {
        if (r.status === 429 || r.status >= 500) throw new Error('status ' + r.status);
        return r.json().then(function (body) {
          buffer.splice(0, batch.length);
          attempt = 0;
          (body.results || []).forEach(function (res) {
            if (res.session && res.session.id) sessionId = res.session.id;
            if (res.error) log('event refused', res.error);
          });
          if (!r.ok && body.code) log('batch refused', body);
          lastBeacon = Date.now();
          startPings(true);
        });
      })
      .catch(function (err) {
        attempt += 1;
        var delay = Math.min(30000, 1000 * Math.pow(2, attempt - 1)) * (0.75 + Math.random() / 2);
        log('send failed, retrying in', Math.round(delay), 'ms', err);
        retryTimer = setTimeout(function () { retryTimer = 0; flush(); }, delay);
      })
      .then(function () { sending = false; if (buffer.length && !retryTimer) flushTimer = setTimeout(flush, 0); });
  }

  function beaconFlush() {
    if (!cfg || !buffer.length) return;
    var batch = buffer.splice(0, 100);
    var body = JSON.stringify(batch);
    var ok = navigator.sendBeacon && navigator.sendBeacon(endpoint('/webevents'), new Blob([body], { type: 'text/plain' }));
    if (!ok) fetch(endpoint('/webevents'), { method: 'POST', body: body, headers: { 'content-type': 'text/plain' }, keepalive: true, credentials: 'omit' }).catch(function () {});
  }

  // ---- pings and offers ------------------------------------------------------------------------------------
  function startPings(now) {
    if (!cfg || pingEvery < 0 || d.visibilityState === 'hidden') return;
    clearTimeout(pingTimer);
    pingTimer = setTimeout(ping, now ? 0 : pingEvery);
  }

  function ping() {
    if (!cfg || pinging || !readCookie() || d.visibilityState === 'hidden') return;
    pinging = true;
    var q = '?dl=' + encodeURIComponent(pageUrl()) + '&dt=' + encodeURIComponent(d.title || '') +
      (sessionId ? '&sessionId=' + sessionId : '') + '&sinceLastBeaconMilliseconds=' + (Date.now() - lastBeacon);
    fetch(endpoint('/customers/' + encodeURIComponent(customerId()) + '/ping' + q), { credentials: 'omit' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) return;
        if (typeof body.pollIntervalMilliseconds === 'number') pingEvery = body.pollIntervalMilliseconds;
        (body.actions || []).forEach(offer);
      })
      .catch(function (err) { log('ping failed', err); })
      .then(function () { pinging = false; if (pingEvery >= 0) startPings(false); });
  }

  function report(action, state, error) {
    var body = { sessionId: action.sessionId, actionId: action.id, actionState: state };
    if (error) { body.errorCode = 'render_failed'; body.errorMessage = String(error).slice(0, 500); }
    emit('offer' + state.charAt(0).toUpperCase() + state.slice(1), action);
    var send = function (n) {
      fetch(endpoint('/actionevent'), { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'text/plain' }, keepalive: true, credentials: 'omit' })
        .then(function (r) { if (r.status === 429 || r.status >= 500) throw new Error('status ' + r.status); })
        .catch(function () { if (n < 4) setTimeout(function () { send(n + 1); }, 1000 * Math.pow(2, n)); });
    };
    send(0);
  }

  function emit(name, detail) {
    (listeners[name] || []).forEach(function (fn) { try { fn(detail); } catch (e) { log(e); } });
    try { w.dispatchEvent(new CustomEvent('waymark:' + name, { detail: detail })); } catch (e) { log(e); }
  }

  var CSS = ':host{all:initial}' +
    '.wm{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#fff;border-radius:10px;' +
    'box-shadow:0 8px 30px rgba(0,0,0,.25);padding:18px 18px 14px;width:320px;max-width:calc(100vw - 32px);position:relative;box-sizing:border-box}' +
    '.wm h2{font-size:17px;margin:0 28px 6px 0}.wm p{margin:0 0 10px}.wm .hl{font-weight:600}' +
    '.wm img{display:block;max-width:100%;border-radius:6px;margin:0 0 10px}' +
    '.wm .row{display:flex;gap:8px;justify-content:flex-end;margin-top:6px}' +
    '.wm button{font:inherit;border-radius:6px;padding:7px 14px;cursor:pointer;border:1px solid #2152c4}' +
    '.wm .yes{background:#2152c4;color:#fff}.wm .no{background:#fff;color:#2152c4}' +
    '.wm .x{position:absolute;top:8px;right:8px;border:0;background:none;color:#555;font-size:20px;line-height:1;padding:4px 8px}' +
    '.wm button:focus-visible{outline:3px solid #f5a623;outline-offset:2px}' +
    '.back{position:fixed;inset:0;background:rgba(0,0,0,.4);display:flex;align-items:center;justify-content:center}';

  function el(tag, cls, text) {
    var e = d.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }

  function offer(action) {
    if (!cfg.offers || seen[action.id] || shown) return;
    seen[action.id] = 1;
    try { render(action); } catch (err) { close(); report(action, 'errored', err); }
  }

  function render(action) {
    var content = action.contentOfferProperties, chat = !content;
    var host = el('div');
    host.setAttribute('data-waymark-offer', action.id);
    host.style.cssText = 'all:initial;position:fixed;z-index:2147483647;right:16px;bottom:16px';
    var root = host.attachShadow({ mode: 'open' });
    var style = el('style'); style.textContent = CSS; root.appendChild(style);
    var box = el('div', 'wm');
    box.setAttribute('role', 'dialog');
    box.setAttribute('aria-labelledby', 'wm-title');
    box.setAttribute('aria-describedby', 'wm-body');
    var modal = content && content.displayMode === 'Modal';
    box.setAttribute('aria-modal', modal ? 'true' : 'false');
    var title = el('h2', '', (content && content.title) || (chat ? 'Chat with us' : ''));
    title.id = 'wm-title';
    box.appendChild(title);
    var text = el('div'); text.id = 'wm-body';
    if (content) {
      if (content.imageUrl && content.layoutMode !== 'TextOnly') {
        var img = el('img'); img.src = content.imageUrl; img.alt = content.imageAltText || ''; text.appendChild(img);
      }
      if (content.headline) text.appendChild(el('p', 'hl', content.headline));
      if (content.body) text.appendChild(el('p', '', content.body));
    } else {
      text.appendChild(el('p', '', (action.webMessagingOfferProperties && action.webMessagingOfferProperties.offerText) || 'Can we help you?'));
    }
    box.appendChild(text);
    var x = el('button', 'x', '\u00d7'); x.type = 'button'; x.setAttribute('aria-label', 'Dismiss offer');
    var row = el('div', 'row');
    var no = el('button', 'no', chat ? 'No thanks' : 'Not now'); no.type = 'button';
    var cta = content && content.callToAction;
    var yes = el('button', 'yes', chat ? 'Start chat' : ((cta && cta.text) || 'OK')); yes.type = 'button';
    row.appendChild(no); row.appendChild(yes);
    box.appendChild(row); box.appendChild(x);
    if (modal) {
      var back = el('div', 'back'); back.appendChild(box); root.appendChild(back);
      host.style.cssText = 'all:initial;position:fixed;z-index:2147483647;inset:0';
    } else {
      root.appendChild(box);
    }
    var previous = d.activeElement;
    var timer = cfg.offerTimeoutSeconds > 0 ? setTimeout(function () { done('timedout'); }, cfg.offerTimeoutSeconds * 1000) : 0;
    function onKey(e) {
      if (e.key === 'Escape') { e.stopPropagation(); done('rejected'); }
      else if (e.key === 'Tab' && modal) {
        var items = [x, no, yes], i = items.indexOf(root.activeElement);
        e.preventDefault(); items[(i + (e.shiftKey ? 2 : 1)) % 3].focus();
      }
    }
    function done(state) {
      if (!shown || shown.action !== action) return;
      clearTimeout(timer);
      d.removeEventListener('keydown', onKey, true);
      close();
      if (previous && previous.focus && d.contains(previous)) previous.focus();
      report(action, state);
      if (state === 'accepted') {
        if (chat) emit('chat', action);
        else if (cta && cta.url) {
          if (cta.target === 'Blank') w.open(cta.url, '_blank', 'noopener');
          else setTimeout(function () { location.href = cta.url; }, 50);
        }
      }
    }
    yes.addEventListener('click', function () { done('accepted'); });
    no.addEventListener('click', function () { done('rejected'); });
    x.addEventListener('click', function () { done('rejected'); });
    d.addEventListener('keydown', onKey, true);
    shown = { action: action, host: host, done: done };
    d.body.appendChild(host);
    yes.focus();
    report(action, 'offered');
  }

  function close() {
    if (shown && shown.host.parentNode) shown.host.parentNode.removeChild(shown.host);
    shown = null;
  }

  // ---- automatic tracking ----------------------------------------------------------------------------------
  function urlChanged() {
    var u = pageUrl();
    if (u === lastUrl) return;
    abandonForms();
    scrollMarks = {};
    commands.pageview({ referrer: lastUrl });
  }

  function onScroll() {
    var marks = cfg.scrollDepth;
    if (!marks.length) return;
    var h = Math.max(d.documentElement.scrollHeight, d.body ? d.body.scrollHeight : 0);
    if (h <= w.innerHeight) return;
    var pct = Math.min(100, Math.round(((w.scrollY + w.innerHeight) / h) * 100));
    marks.forEach(function (m) {
      if (pct >= m && !scrollMarks[m]) { scrollMarks[m] = 1; enqueue(event('scroll_depth_' + m, { percentage: m })); }
    });
  }

  function activity() {
    clearTimeout(idleTimer);
    if (!cfg.idleAfterSeconds) return;
    idleTimer = setTimeout(function () {
      if (!idleFired && d.visibilityState !== 'hidden') { idleFired = true; enqueue(event('user_idle', { idleAfterSeconds: cfg.idleAfterSeconds })); }
    }, cfg.idleAfterSeconds * 1000);
  }

  function formFields(form) {
    var out = {}, n = 0;
    [].forEach.call(form.elements, function (f) {
      var type = (f.type || '').toLowerCase(), ac = (f.autocomplete || '').toLowerCase();
      if (!f.name || n >= 40 || /password|hidden|file|submit|button|reset/.test(type) || /^cc-|password/.test(ac) || /pass|card|cvv|ssn/i.test(f.name)) return;
      if ((type === 'checkbox' || type === 'radio') && !f.checked) return;
      out['field_' + f.name.slice(0, 100)] = String(f.value).slice(0, 512); n++;
    });
    return out;
  }

  function trackedForm(target) {
    for (var i = 0; i < forms.length; i++) {
      var form = target && target.closest && target.closest(forms[i].selector);
      if (form && form.tagName === 'FORM') return { form: form, opts: forms[i] };
    }
    return null;
  }

  function formAttrs(t, capture) {
    var a = { formName: t.opts.formName || t.form.getAttribute('name') || t.form.id || t.form.getAttribute('action') || 'form' };
    if (capture) { var f = formFields(t.form); for (var k in f) a[k] = f[k]; }
    return a;
  }

  function abandonForms() {
    forms.forEach(function (o) {
      (o.touched || []).forEach(function (form) {
        if (form.__wmSubmitted) return;
        form.__wmSubmitted = true;
        enqueue(event('form_abandoned', formAttrs({ form: form, opts: o }, o.captureFormDataOnAbandon)));
      });
      o.touched = [];
    });
  }

  // ---- commands --------------------------------------------------------------------------------------------
  var commands = {
    init: function (deploymentId, options) {
      if (cfg) return;
      options = options || {};
      var src = me && me.src ? new URL(me.src, location.href) : null;
      cfg = {
        deploymentId: String(deploymentId),
        base: (options.apiBase || (src ? src.origin : location.origin)).replace(/\/$/, ''),
        cookieName: options.cookieName || '_wm_customer',
        cookieDomain: options.cookieDomain || '',
        keepFragment: !!options.keepFragment,
        scrollDepth: options.scrollDepth || [25, 50, 75, 100],
        idleAfterSeconds: options.idleAfterSeconds === undefined ? 60 : options.idleAfterSeconds,
        offers: options.offers !== false,
        offerTimeoutSeconds: options.offerTimeoutSeconds === undefined ? 60 : options.offerTimeoutSeconds,
        debug: !!options.debug
      };
      if (options.autotrackUrlChange !== false) {
        ['pushState', 'replaceState'].forEach(function (m) {
          var orig = history[m];
          history[m] = function () { var r = orig.apply(this, arguments); setTimeout(urlChanged, 0); return r; };
        });
        w.addEventListener('popstate', urlChanged);
        w.addEventListener('hashchange', function () { if (cfg.keepFragment) urlChanged(); });
      }
      var scrollQueued = false;
      w.addEventListener('scroll', function () {
        activity();
        if (!scrollQueued) { scrollQueued = true; w.requestAnimationFrame(function () { scrollQueued = false; onScroll(); }); }
      }, { passive: true });
      ['mousemove', 'keydown', 'pointerdown', 'touchstart'].forEach(function (t) { d.addEventListener(t, activity, { passive: true, capture: true }); });
      activity();
      d.addEventListener('visibilitychange', function () {
        if (d.visibilityState === 'hidden') { beaconFlush(); clearTimeout(pingTimer); }
        else { activity(); startPings(true); }
      });
      w.addEventListener('pagehide', function () {
        abandonForms();
        if (shown) { var a = shown.action; close(); report(a, 'ignored'); }
        beaconFlush();
      });
      d.addEventListener('submit', function (e) {
        var t = trackedForm(e.target);
        if (!t || t.form.__wmSubmitted) return;
        t.form.__wmSubmitted = true;
        enqueue(event('form_submitted', formAttrs(t, t.opts.captureFormDataOnSubmit)));
        flush();
      }, true);
      d.addEventListener('input', function (e) {
        var t = trackedForm(e.target);
        if (t && t.opts.touched.indexOf(t.form) < 0) t.opts.touched.push(t.form);
      }, true);
      log('ready', cfg);
    },
    pageview: function (options) {
      options = options || {};
      var e = event('page_viewed', options.customAttributes, options);
      var ref = options.referrer !== undefined ? options.referrer : firstPageview ? d.referrer : lastUrl;
      if (ref) e.referrerUrl = ref;
      firstPageview = false;
      lastUrl = pageUrl();
      enqueue(e);
    },
    record: function (name, attributes) { enqueue(event(String(name), attributes)); },
    identify: function (a, b) {
      var t = (a && typeof a === 'object') ? a : (b || {});
      traits = traits || {};
      if (typeof a === 'string') traits.loginId = a;
      Object.keys(t).forEach(function (k) { if (t[k] !== undefined && t[k] !== null) traits[k] = String(t[k]); });
    },
    logout: function () {
      flush();
      beaconFlush();
      if (shown) { var a = shown.action; close(); report(a, 'abandoned'); }
      traits = null; sessionId = null; seen = {};
      writeCookie(uuid());
    },
    'forms:track': function (selector, options) {
      options = options || {};
      forms.push({
        selector: selector || 'form',
        formName: options.formName,
        captureFormDataOnSubmit: options.captureFormDataOnSubmit !== false,
        captureFormDataOnAbandon: !!options.captureFormDataOnAbandon,
        touched: []
      });
    },
    flush: function () { flush(); },
    on: function (name, fn) { (listeners[name] = listeners[name] || []).push(fn); }
  };

  function run(args) {
    var name = args[0], fn = commands[name];
    if (!fn) { if (w.console) w.console.warn('[waymark] unknown command', name); return; }
    if (!cfg && name !== 'init' && name !== 'on') { pending.push(args); return; }
    try { fn.apply(null, [].slice.call(args, 1)); } catch (e) { if (w.console) w.console.error('[waymark]', name, e); }
    if (name === 'init') { var p = pending; pending = []; p.forEach(run); }
  }
  var pending = [];

  var api = function () { run(arguments); };
  api.loaded = true;
  w[NAME] = api;
  queued.forEach(run);
})();
