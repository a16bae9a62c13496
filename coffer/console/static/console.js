/* Coffer console: vanilla JS, no dependencies (docs/console.md).
 * Bucket and object operations are S3 requests to this same server; the session cookie plus the
 * X-Coffer-CSRF header stand in for a SigV4 signature. The JSON API under api/ covers the rest. */
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const PART_SIZE = 16 * 1024 * 1024;   // multipart above this size, in parts of this size
const PARALLEL_FILES = 3;
const PAGE_KEYS = 1000;
let session = null;

// ------------------------------------------------------------------ small helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function humanBytes(n) {
  if (n === null || n === undefined || isNaN(n)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? Math.round(n) : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
}

// One formatter for every date: toLocaleString() builds a new one per call (slow for 1,000 rows).
const DATES = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? '' : DATES.format(d);
}

function status(text) { $('#status').textContent = text; }

function objectPath(bucket, key) {
  let path = '/' + encodeURIComponent(bucket);
  if (key !== undefined) path += '/' + key.split('/').map(encodeURIComponent).join('/');
  return path;
}

function xmlText(node, name) {
  const found = node.getElementsByTagName(name)[0];
  return found ? found.textContent : null;
}

class S3Failure extends Error {
  constructor(status, code, message) { super(code + (message ? ': ' + message : '')); this.status = status; this.code = code; }
}

async function failureOf(resp) {
  const text = await resp.text();
  let code = 'HTTP ' + resp.status, message = '';
  const type = resp.headers.get('content-type') || '';
  if (type.includes('json')) {
    try { const j = JSON.parse(text); code = j.error || code; message = j.message || ''; } catch (e) { /* not JSON */ }
  } else if (text.startsWith('<')) {
    // (Only real XML: a parse error document carries inline styles the page's CSP refuses.)
    const doc = new DOMParser().parseFromString(text, 'application/xml');
    code = xmlText(doc, 'Code') || code;
    message = xmlText(doc, 'Message') || '';
  }
  return new S3Failure(resp.status, code, message);
}

// The console's own JSON API.
async function api(method, path, body) {
  const headers = {};
  if (session) headers['X-Coffer-CSRF'] = session.csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch('api/' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  if (!resp.ok) throw await failureOf(resp);
  return resp.json();
}

// One S3 request to this server, signed in by the session.
async function s3(method, path, { query = '', body, headers = {} } = {}) {
  const resp = await fetch(path + query, {
    method, body, credentials: 'same-origin', headers: { 'X-Coffer-CSRF': session.csrf, ...headers },
  });
  if (!resp.ok) throw await failureOf(resp);
  return resp;
}

async function s3xml(method, path, opts) {
  const resp = await s3(method, path, opts);
  return new DOMParser().parseFromString(await resp.text(), 'application/xml');
}

// ------------------------------------------------------------------ views and routing
const VIEWS = ['login', 'buckets', 'browse', 'keys', 'metrics'];

function show(view) {
  for (const name of VIEWS) $('#view-' + name).hidden = name !== view;
  $('#top').hidden = view === 'login';
  for (const link of document.querySelectorAll('header nav a')) {
    const current = link.getAttribute('href') === '#/' + view || (view === 'browse' && link.getAttribute('href') === '#/buckets');
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  if (view !== 'metrics') stopMetrics();
  status('');
}

async function route() {
  if (!session) { show('login'); $('#login-ak').focus(); return; }
  const hash = location.hash.replace(/^#\/?/, '');
  const [view, ...rest] = hash.split('/');
  try {
    if (view === 'b' && rest.length) {
      show('browse');
      await openFolder(decodeURIComponent(rest[0]), decodeURIComponent(rest.slice(1).join('/')));
    } else if (view === 'keys' && session.root) {
      show('keys'); await loadKeys();
    } else if (view === 'metrics' && session.root) {
      show('metrics'); startMetrics();
    } else {
      show('buckets'); await loadBuckets();
    }
  } catch (e) { status('Error: ' + e.message); }
}

function folderHash(bucket, prefix) {
  return '#/b/' + encodeURIComponent(bucket) + '/' + encodeURIComponent(prefix || '');
}

// ------------------------------------------------------------------ sign-in
async function signIn(event) {
  event.preventDefault();
  const error = $('#login-error');
  error.textContent = '';
  const button = $('#login-form button');
  button.disabled = true;
  try {
    session = await api('POST', 'login', { access_key: $('#login-ak').value, secret_key: $('#login-sk').value });
    $('#login-sk').value = '';
    signedIn();
    if (!location.hash || location.hash === '#/login') location.hash = '#/buckets'; else await route();
  } catch (e) {
    error.textContent = e.code === 'InvalidCredentials' ? 'Wrong access key or secret key.'
      : e.code === 'SlowDown' ? 'Too many attempts: wait a few seconds and try again.' : 'Sign-in failed: ' + e.message;
    $('#login-sk').focus();
  } finally { button.disabled = false; }
}

function signedIn() {
  $('#who').textContent = session.display_name + ' (' + session.access_key + ')' + (session.auth ? '' : ' — authentication is off');
  for (const node of document.querySelectorAll('.root-only')) node.hidden = !session.root;
}

async function signOut() {
  try { await api('POST', 'logout'); } catch (e) { /* the cookie is cleared either way */ }
  session = null;
  location.hash = '#/login';
  await route();
}

// ------------------------------------------------------------------ buckets
async function loadBuckets(recount = false) {
  const doc = await s3xml('GET', '/');
  const tbody = $('#bucket-table tbody');
  const frag = document.createDocumentFragment();
  const names = [];
  for (const b of doc.getElementsByTagName('Bucket')) {
    const name = xmlText(b, 'Name');
    names.push(name);
    const objects = el('td', { class: 'num', text: '…' });
    const size = el('td', { class: 'num', text: '…' });
    frag.append(el('tr', { 'data-bucket': name },
      el('td', { class: 'name' }, el('a', { href: folderHash(name, ''), text: name })),
      el('td', { text: when(xmlText(b, 'CreationDate')) }),
      objects, size,
      el('td', {}, el('button', { type: 'button', class: 'danger', 'aria-label': 'Delete bucket ' + name, text: 'Delete', onclick: () => deleteBucket(name) }))));
    api('GET', 'bucket-stats?bucket=' + encodeURIComponent(name) + (recount ? '&refresh=1' : '')).then((s) => {
      objects.textContent = s.objects.toLocaleString(); size.textContent = humanBytes(s.bytes);
    }, () => { objects.textContent = '—'; size.textContent = '—'; });
  }
  tbody.replaceChildren(frag);
  if (!names.length) tbody.append(el('tr', {}, el('td', { colspan: '5', text: 'No buckets yet: create one above.' })));
}

async function createBucket(event) {
  event.preventDefault();
  const name = $('#new-bucket').value.trim();
  if (!name) return;
  try {
    await s3('PUT', objectPath(name));
    $('#new-bucket').value = '';
    status('Bucket ' + name + ' created.');
    await loadBuckets();
  } catch (e) { status('Could not create bucket: ' + e.message); }
}

async function deleteBucket(name) {
  if (!confirm('Delete bucket ' + name + '? It must be empty.')) return;
  try {
    await s3('DELETE', objectPath(name));
    status('Bucket ' + name + ' deleted.');
    await loadBuckets();
  } catch (e) { status('Could not delete bucket: ' + e.message); }
}

// ------------------------------------------------------------------ browsing
const browse = { bucket: '', prefix: '', filter: '', tokens: [''], page: 0, next: null };

async function openFolder(bucket, prefix) {
  if (bucket !== browse.bucket || prefix !== browse.prefix) {
    Object.assign(browse, { bucket, prefix, filter: '', tokens: [''], page: 0, next: null });
    $('#filter').value = '';
  }
  renderCrumbs();
  await loadPage();
}

function renderCrumbs() {
  const nav = $('#crumbs');
  const parts = browse.prefix.split('/').filter(Boolean);
  const items = [el('a', { href: '#/buckets', text: 'Buckets' }), document.createTextNode(' / ')];
  items.push(parts.length ? el('a', { href: folderHash(browse.bucket, ''), text: browse.bucket })
    : el('span', { 'aria-current': 'page', text: browse.bucket }));
  let acc = '';
  parts.forEach((part, i) => {
    acc += part + '/';
    items.push(document.createTextNode(' / '));
    items.push(i === parts.length - 1 ? el('span', { 'aria-current': 'page', text: part })
      : el('a', { href: folderHash(browse.bucket, acc), text: part }));
  });
  nav.replaceChildren(...items);
}

async function loadPage() {
  const started = performance.now();
  const prefix = browse.prefix + browse.filter;
  let query = '?list-type=2&delimiter=%2F&encoding-type=url&max-keys=' + PAGE_KEYS + '&prefix=' + encodeURIComponent(prefix);
  const token = browse.tokens[browse.page];
  if (token) query += '&continuation-token=' + encodeURIComponent(token);
  const doc = await s3xml('GET', objectPath(browse.bucket), { query });
  const fetched = performance.now();
  const decode = (s) => decodeURIComponent(s);
  const frag = document.createDocumentFragment();
  let rows = 0;
  for (const p of doc.getElementsByTagName('CommonPrefixes')) {
    const full = decode(xmlText(p, 'Prefix'));
    const name = full.slice(browse.prefix.length);
    frag.append(el('tr', { class: 'dir' },
      el('td', { class: 'check' }),
      el('td', { class: 'name' }, el('a', { class: 'folder', href: folderHash(browse.bucket, full), text: name })),
      el('td', { class: 'num', text: '—' }), el('td', { class: 'hide-narrow' })));
    rows++;
  }
  for (const c of doc.getElementsByTagName('Contents')) {
    const key = decode(xmlText(c, 'Key'));
    if (key === browse.prefix) continue;  // the folder's own marker object
    const name = key.slice(browse.prefix.length);
    // Cloning one prepared row is several times faster than building each row's elements.
    const row = OBJECT_ROW.cloneNode(true);
    row.dataset.key = key;
    const [check, label, size, date] = row.children;
    const box = check.firstChild;
    box.value = key;
    box.setAttribute('aria-label', 'Select ' + name);
    label.firstChild.textContent = name;
    size.textContent = humanBytes(Number(xmlText(c, 'Size')));
    date.textContent = when(xmlText(c, 'LastModified'));
    frag.append(row);
    rows++;
  }
  if (!rows) frag.append(el('tr', {}, el('td', { colspan: '4', text: 'This folder is empty: drop files here to upload.' })));
  $('#object-table tbody').replaceChildren(frag);
  const built = performance.now();
  $('#select-all').checked = false;
  updateSelection();
  browse.next = xmlText(doc, 'IsTruncated') === 'true' ? xmlText(doc, 'NextContinuationToken') : null;
  $('#prev-page').disabled = browse.page === 0;
  $('#next-page').disabled = !browse.next;
  // Let the browser lay the rows out before stopping the clock.
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const ms = performance.now() - started;
  window.cofferLastPage = { rows, fetchMs: fetched - started, buildMs: built - fetched, totalMs: ms };
  $('#page-info').textContent = 'Page ' + (browse.page + 1) + ' · ' + rows + ' entries · ' + Math.round(ms) + ' ms';
}

const OBJECT_ROW = el('tr', {},
  el('td', { class: 'check' }, el('input', { type: 'checkbox', class: 'pick' })),
  el('td', { class: 'name' }, el('button', { type: 'button', class: 'linkish' })),
  el('td', { class: 'num' }), el('td', { class: 'hide-narrow' }));

async function nextPage() {
  if (!browse.next) return;
  browse.tokens[browse.page + 1] = browse.next;
  browse.page++;
  await loadPage();
}

async function prevPage() {
  if (browse.page === 0) return;
  browse.page--;
  await loadPage();
}

function selectedKeys() {
  return [...document.querySelectorAll('#object-table .pick:checked')].map((box) => box.value);
}

function updateSelection() {
  const n = selectedKeys().length;
  const button = $('#delete-selected');
  button.disabled = n === 0;
  button.textContent = n ? 'Delete selected (' + n + ')' : 'Delete selected';
}

function xmlEscape(s) {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' }[c]));
}

async function deleteKeys(keys) {
  const body = '<Delete><Quiet>true</Quiet>' + keys.map((k) => '<Object><Key>' + xmlEscape(k) + '</Key></Object>').join('') + '</Delete>';
  const doc = await s3xml('POST', objectPath(browse.bucket), { query: '?delete', body, headers: { 'Content-Type': 'application/xml' } });
  const errors = doc.getElementsByTagName('Error');
  if (errors.length) throw new Error(errors.length + ' not deleted (' + xmlText(errors[0], 'Code') + ')');
}

async function deleteSelected() {
  const keys = selectedKeys();
  if (!keys.length || !confirm('Delete ' + keys.length + ' object(s)?')) return;
  try {
    await deleteKeys(keys);
    status(keys.length + ' object(s) deleted.');
    await loadPage();
  } catch (e) { status('Delete failed: ' + e.message); }
}

// ------------------------------------------------------------------ object details
let detailsKey = null;

async function showDetails(key) {
  detailsKey = key;
  const dialog = $('#details');
  $('#details-title').textContent = key;
  $('#share-url').hidden = true;
  $('#details-props').replaceChildren();
  $('#details-tags').replaceChildren();
  $('#details-versions').replaceChildren();
  if (!dialog.open) dialog.showModal();
  const path = objectPath(browse.bucket, key);
  try {
    const head = await s3('HEAD', path);
    const props = [
      ['Size', humanBytes(Number(head.headers.get('content-length')))],
      ['Content type', head.headers.get('content-type')],
      ['Last modified', head.headers.get('last-modified')],
      ['ETag', head.headers.get('etag')],
      ['Version', head.headers.get('x-amz-version-id')],
      ['Storage class', head.headers.get('x-amz-storage-class') || 'STANDARD'],
    ];
    for (const [name, value] of head.headers) if (name.startsWith('x-amz-meta-')) props.push(['Metadata ' + name.slice(11), value]);
    try {
      const attrs = await s3xml('GET', path, { query: '?attributes', headers: { 'x-amz-object-attributes': 'Checksum,ObjectSize,ETag' } });
      let found = false;
      for (const algo of ['ChecksumCRC32', 'ChecksumCRC32C', 'ChecksumCRC64NVME', 'ChecksumSHA1', 'ChecksumSHA256']) {
        const value = xmlText(attrs, algo);
        if (value) { props.push([algo.replace('Checksum', 'Checksum ').trim(), value]); found = true; }
      }
      if (!found) props.push(['Checksum', 'none stored (ETag above)']);
    } catch (e) { props.push(['Checksum', 'unavailable: ' + e.message]); }
    fillProps($('#details-props'), props.filter(([, v]) => v));
    try {
      const tags = await s3xml('GET', path, { query: '?tagging' });
      const pairs = [...tags.getElementsByTagName('Tag')].map((t) => [xmlText(t, 'Key'), xmlText(t, 'Value')]);
      fillProps($('#details-tags'), pairs.length ? pairs : [['', 'No tags']]);
    } catch (e) { fillProps($('#details-tags'), [['', 'unavailable: ' + e.message]]); }
    await loadVersions(key);
  } catch (e) { status('Could not read ' + key + ': ' + e.message); }
}

function fillProps(dl, pairs) {
  const frag = document.createDocumentFragment();
  for (const [k, v] of pairs) frag.append(el('dt', { text: k }), el('dd', { text: v }));
  dl.replaceChildren(frag);
}

async function loadVersions(key) {
  const box = $('#details-versions');
  try {
    const doc = await s3xml('GET', objectPath(browse.bucket), { query: '?versions&max-keys=100&prefix=' + encodeURIComponent(key) });
    const rows = [];
    for (const tag of ['Version', 'DeleteMarker']) {
      for (const v of doc.getElementsByTagName(tag)) {
        if (xmlText(v, 'Key') !== key) continue;
        rows.push([xmlText(v, 'VersionId'), tag === 'DeleteMarker' ? 'delete marker' : humanBytes(Number(xmlText(v, 'Size'))), when(xmlText(v, 'LastModified')), xmlText(v, 'IsLatest') === 'true']);
      }
    }
    if (rows.length <= 1 && (!rows.length || rows[0][0] === 'null')) {
      box.replaceChildren(el('p', { class: 'hint', text: 'Versioning is not enabled on this bucket (or this is the only version).' }));
      return;
    }
    const tbody = el('tbody');
    for (const [id, size, date, latest] of rows) tbody.append(el('tr', {}, el('td', { text: id + (latest ? ' (latest)' : '') }), el('td', { text: size }), el('td', { text: date })));
    box.replaceChildren(el('div', { class: 'scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Version' }), el('th', { scope: 'col', text: 'Size' }), el('th', { scope: 'col', text: 'Date' }))), tbody)));
  } catch (e) { box.replaceChildren(el('p', { text: 'unavailable: ' + e.message })); }
}

async function shareLink(event) {
  event.preventDefault();
  try {
    const link = await api('POST', 'presign', { bucket: browse.bucket, key: detailsKey, expires: Number($('#share-expiry').value) });
    const out = $('#share-url');
    out.value = link.url;
    out.hidden = false;
    out.focus();
    out.select();
    status('Share link valid until ' + new Date(link.expires_at * 1000).toLocaleString() + '.');
  } catch (e) { status('Could not create a link: ' + e.message); }
}

async function download() {
  try {
    const link = await api('POST', 'presign', { bucket: browse.bucket, key: detailsKey, expires: 300, download: true });
    const a = el('a', { href: link.url, download: detailsKey.split('/').pop() });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (e) { status('Download failed: ' + e.message); }
}

async function deleteOne() {
  if (!confirm('Delete ' + detailsKey + '?')) return;
  try {
    await s3('DELETE', objectPath(browse.bucket, detailsKey));
    $('#details').close();
    status(detailsKey + ' deleted.');
    await loadPage();
  } catch (e) { status('Delete failed: ' + e.message); }
}

// ------------------------------------------------------------------ uploads
const queue = [];
let running = 0;

function enqueue(files) {
  // files: [{file, path}] where path is relative to the current folder
  for (const item of files) {
    const bar = el('progress', { max: '100', value: '0', 'aria-label': 'Upload progress of ' + item.path });
    const state = el('span', { class: 'state', text: 'waiting' });
    const row = el('li', {}, el('span', { class: 'name', text: item.path, title: item.path }), bar, state);
    $('#uploads').append(row);
    queue.push({ ...item, bucket: browse.bucket, key: browse.prefix + item.path, bar, state, row });
  }
  pump();
}

function pump() {
  while (running < PARALLEL_FILES && queue.length) {
    const job = queue.shift();
    running++;
    uploadOne(job).then(() => {
      job.bar.value = 100; job.state.textContent = 'done'; job.row.classList.add('done');
    }, (e) => {
      job.state.textContent = 'failed'; job.row.classList.add('failed'); job.row.title = e.message;
      status('Upload of ' + job.path + ' failed: ' + e.message);
    }).finally(() => {
      running--;
      if (!running && !queue.length && browse.bucket) loadPage().catch(() => {});
      pump();
    });
  }
}

function xhrPut(url, blob, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    xhr.setRequestHeader('X-Coffer-CSRF', session.csrf);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.getResponseHeader('ETag'));
      else {
        const doc = new DOMParser().parseFromString(xhr.responseText.startsWith('<') ? xhr.responseText : '<x/>', 'application/xml');
        reject(new S3Failure(xhr.status, xmlText(doc, 'Code') || 'HTTP ' + xhr.status, xmlText(doc, 'Message')));
      }
    };
    xhr.onerror = () => reject(new Error('network error'));
    xhr.send(blob);
  });
}

async function uploadOne(job) {
  const { file } = job;
  const path = objectPath(job.bucket, job.key);
  const type = file.type || 'application/octet-stream';
  const total = file.size || 1;
  const progress = (done) => { job.bar.value = Math.min(100, (100 * done) / total); job.state.textContent = Math.floor(job.bar.value) + '%'; };
  job.state.textContent = '0%';
  if (file.size <= PART_SIZE) {
    await xhrPut(path, file, { 'Content-Type': type }, progress);
    return;
  }
  const created = await s3xml('POST', path, { query: '?uploads', headers: { 'Content-Type': type } });
  const uploadId = xmlText(created, 'UploadId');
  const parts = [];
  try {
    let offset = 0;
    for (let n = 1; offset < file.size; n++) {
      const blob = file.slice(offset, offset + PART_SIZE);
      const base = offset;
      const etag = await xhrPut(path + '?partNumber=' + n + '&uploadId=' + encodeURIComponent(uploadId), blob, {}, (loaded) => progress(base + loaded));
      parts.push('<Part><PartNumber>' + n + '</PartNumber><ETag>' + xmlEscape(etag) + '</ETag></Part>');
      offset += blob.size;
    }
    const body = '<CompleteMultipartUpload>' + parts.join('') + '</CompleteMultipartUpload>';
    const done = await s3xml('POST', path, { query: '?uploadId=' + encodeURIComponent(uploadId), body, headers: { 'Content-Type': 'application/xml' } });
    if (done.getElementsByTagName('Error').length) throw new Error(xmlText(done, 'Code'));
  } catch (e) {
    s3('DELETE', path, { query: '?uploadId=' + encodeURIComponent(uploadId) }).catch(() => {});
    throw e;
  }
}

function filesFromInput(input) {
  const items = [...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
  input.value = '';
  return items;
}

// Folders dropped in: walk them (webkitGetAsEntry is supported by every current browser).
async function filesFromDrop(dataTransfer) {
  const out = [];
  const walk = async (entry, dir) => {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, path: dir + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, dir + entry.name + '/');
      }
    }
  };
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files].map((file) => ({ file, path: file.name }));
  for (const entry of entries) await walk(entry, '');
  return out;
}

function setupDropzone() {
  const zone = $('#dropzone');
  const target = $('#view-browse');
  target.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  target.addEventListener('dragleave', (e) => { if (!target.contains(e.relatedTarget)) zone.classList.remove('over'); });
  target.addEventListener('drop', async (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    enqueue(await filesFromDrop(e.dataTransfer));
  });
  zone.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('#pick-files').click(); } });
  zone.addEventListener('click', () => $('#pick-files').click());
}

// ------------------------------------------------------------------ key pairs (root)
async function loadKeys() {
  const { keys } = await api('GET', 'keys');
  const frag = document.createDocumentFragment();
  for (const k of keys) {
    const mine = k.access_key === session.access_key;
    const action = k.source === 'settings' || mine ? el('span', { class: 'hint', text: mine ? 'signed in' : 'in settings' })
      : el('button', { type: 'button', class: 'danger', 'aria-label': 'Delete key pair ' + k.access_key, text: 'Delete', onclick: () => deleteKey(k.access_key) });
    frag.append(el('tr', { 'data-key': k.access_key },
      el('td', { text: k.access_key }), el('td', { text: k.display_name }),
      el('td', { text: k.source }), el('td', { text: k.policy ? 'limited' : 'full' }), el('td', {}, action)));
  }
  $('#key-table tbody').replaceChildren(frag);
}

async function createKey(event) {
  event.preventDefault();
  try {
    const made = await api('POST', 'keys', { access_key: $('#key-ak').value.trim(), display_name: $('#key-name').value.trim(), policy: $('#key-policy').value });
    const box = $('#new-key');
    box.replaceChildren(
      el('p', { text: 'Key pair created. Copy the secret now: it is not shown again.' }),
      el('p', {}, el('strong', { text: 'Access key: ' }), el('code', { text: made.access_key })),
      el('p', {}, el('strong', { text: 'Secret key: ' }), el('code', { id: 'new-secret', text: made.secret_key })));
    box.hidden = false;
    $('#key-ak').value = ''; $('#key-name').value = '';
    await loadKeys();
  } catch (e) { status('Could not create the key pair: ' + e.message); }
}

async function deleteKey(accessKey) {
  if (!confirm('Delete key pair ' + accessKey + '? Clients using it stop working at once.')) return;
  try {
    await api('DELETE', 'keys?access_key=' + encodeURIComponent(accessKey));
    status('Key pair ' + accessKey + ' deleted.');
    await loadKeys();
  } catch (e) { status('Could not delete the key pair: ' + e.message); }
}

// ------------------------------------------------------------------ metrics (root)
const COLORS = ['#0a58ca', '#d63384', '#198754', '#fd7e14', '#6f42c1', '#20c997', '#6c757d'];
const HISTORY = 90;
let metricsTimer = null;
let samples = [];

function startMetrics() {
  stopMetrics();
  samples = [];
  const tick = async () => {
    try {
      samples.push(await api('GET', 'metrics'));
      if (samples.length > HISTORY + 1) samples.shift();
      drawMetrics();
    } catch (e) { status('Metrics unavailable: ' + e.message); }
  };
  tick();
  metricsTimer = setInterval(tick, 2000);
}

function stopMetrics() { if (metricsTimer) clearInterval(metricsTimer); metricsTimer = null; }

// The q-quantile of a cumulative histogram difference, linearly interpolated within its bucket.
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (total <= 0) return 0;
  const rank = q * total;
  let prevBound = 0, prevCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (bound === null) return prevBound;
      return prevBound + (bound - prevBound) * ((rank - prevCount) / Math.max(count - prevCount, 1e-9));
    }
    prevBound = bound === null ? prevBound : bound; prevCount = count;
  }
  return prevBound;
}

function drawMetrics() {
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = Math.max(b.time - a.time, 0.001);
    const ops = {};
    for (const [op, n] of Object.entries(b.requests)) if (!op.startsWith('Coffer')) ops[op] = Math.max(0, (n - (a.requests[op] || 0)) / dt);
    const lat = b.latency.map(([bound, n], j) => [bound, n - ((a.latency[j] || [0, 0])[1])]);
    rates.push({ ops, bin: Math.max(0, (b.bytes_in - a.bytes_in) / dt), bout: Math.max(0, (b.bytes_out - a.bytes_out) / dt),
      p50: quantile(lat, 0.5), p95: quantile(lat, 0.95), p99: quantile(lat, 0.99), stored: b.storage.bytes || 0 });
  }
  const totals = {};
  for (const r of rates) for (const [op, v] of Object.entries(r.ops)) totals[op] = (totals[op] || 0) + v;
  const top = Object.keys(totals).sort((x, y) => totals[y] - totals[x]).slice(0, 6);
  lineChart('requests', top.map((op) => ({ name: op, values: rates.map((r) => r.ops[op] || 0) })), (v) => v.toFixed(1) + '/s');
  lineChart('bytes', [{ name: 'in', values: rates.map((r) => r.bin) }, { name: 'out', values: rates.map((r) => r.bout) }], (v) => humanBytes(v) + '/s');
  lineChart('latency', ['p50', 'p95', 'p99'].map((p) => ({ name: p, values: rates.map((r) => r[p]) })), (v) => (v * 1000).toFixed(1) + ' ms');
  const last = samples[samples.length - 1];
  lineChart('storage', [{ name: 'bytes stored', values: samples.map((s) => s.storage.bytes || 0) }], humanBytes,
    last && last.storage.objects !== undefined ? last.storage.objects.toLocaleString() + ' objects' : '');
}

function lineChart(id, series, format, note = '') {
  const svg = $('#chart-' + id);
  const W = 400, H = 180, L = 4, T = 14, B = 4;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values));
  const n = Math.max(2, ...series.map((s) => s.values.length));
  const ns = 'http://www.w3.org/2000/svg';
  const nodes = [];
  const grid = document.createElementNS(ns, 'path');
  grid.setAttribute('d', `M${L} ${T}H${W} M${L} ${(T + H - B) / 2}H${W} M${L} ${H - B}H${W}`);
  grid.setAttribute('stroke', '#d0d7de'); grid.setAttribute('fill', 'none');
  nodes.push(grid);
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', L + 2); label.setAttribute('y', T - 3); label.setAttribute('font-size', '11'); label.setAttribute('fill', '#57606a');
  label.textContent = 'max ' + format(max) + (note ? ' · ' + note : '');
  nodes.push(label);
  series.forEach((s, i) => {
    const pts = s.values.map((v, j) => `${(L + ((W - L) * (j + n - s.values.length)) / (n - 1)).toFixed(1)},${(H - B - ((H - B - T) * v) / max).toFixed(1)}`);
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' '));
    line.setAttribute('fill', 'none'); line.setAttribute('stroke', COLORS[i % COLORS.length]); line.setAttribute('stroke-width', '2');
    line.setAttribute('vector-effect', 'non-scaling-stroke');
    nodes.push(line);
  });
  svg.replaceChildren(...nodes);
  const legend = $('#legend-' + id);
  legend.replaceChildren(...series.map((s, i) => {
    const latest = s.values.length ? s.values[s.values.length - 1] : 0;
    const li = el('li', { text: s.name + ': ' + format(latest) });
    li.style.setProperty('--swatch', COLORS[i % COLORS.length]);
    return li;
  }));
  svg.setAttribute('aria-label', svg.closest('figure').querySelector('figcaption').textContent + ': ' + series.map((s) => s.name + ' ' + format(s.values[s.values.length - 1] || 0)).join(', '));
}

// ------------------------------------------------------------------ start
async function start() {
  $('#login-form').addEventListener('submit', signIn);
  $('#logout').addEventListener('click', signOut);
  $('#create-bucket').addEventListener('submit', createBucket);
  $('#refresh-buckets').addEventListener('click', () => loadBuckets(true).catch((e) => status(e.message)));
  $('#next-page').addEventListener('click', () => nextPage().catch((e) => status(e.message)));
  $('#prev-page').addEventListener('click', () => prevPage().catch((e) => status(e.message)));
  $('#refresh').addEventListener('click', () => loadPage().catch((e) => status(e.message)));
  $('#delete-selected').addEventListener('click', deleteSelected);
  $('#select-all').addEventListener('change', (e) => {
    for (const box of document.querySelectorAll('#object-table .pick')) box.checked = e.target.checked;
    updateSelection();
  });
  $('#object-table').addEventListener('change', (e) => { if (e.target.classList.contains('pick')) updateSelection(); });
  $('#object-table').addEventListener('click', (e) => {
    if (e.target.classList.contains('linkish')) showDetails(e.target.closest('tr').dataset.key);
  });
  $('#filter-form').addEventListener('submit', (e) => {
    e.preventDefault();
    browse.filter = $('#filter').value; browse.tokens = ['']; browse.page = 0;
    loadPage().catch((err) => status(err.message));
  });
  $('#pick-files').addEventListener('change', (e) => enqueue(filesFromInput(e.target)));
  $('#pick-folder').addEventListener('change', (e) => enqueue(filesFromInput(e.target)));
  $('#share-form').addEventListener('submit', shareLink);
  $('#download').addEventListener('click', download);
  $('#delete-object').addEventListener('click', deleteOne);
  $('#create-key').addEventListener('submit', createKey);
  setupDropzone();
  window.addEventListener('hashchange', route);
  try { session = await api('GET', 'session'); signedIn(); } catch (e) { session = null; }
  await route();
  document.body.dataset.ready = 'true';
}

start();
