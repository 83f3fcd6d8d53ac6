// Building the page from data without markup: every string goes in as text.

/**
 * h('td', {class: 'num'}, 'text', childNode, ...) makes an element. Attributes are set with
 * setAttribute (never event handlers given as strings), children are nodes or text.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) throw new Error('use addEventListener, not ' + name);
    el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** A button that runs `action` on click. */
export function button(label, attrs, action) {
  const b = h('button', Object.assign({type: 'button'}, attrs), label);
  b.addEventListener('click', action);
  return b;
}

/** A link to an in-page route. */
export function link(label, route, attrs) {
  return h('a', Object.assign({href: '#' + route}, attrs), label);
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** `yyyy-mm-dd hh:mm:ss` in UTC for an RFC 3339 time, '—' for none. */
export function when(t) {
  if (!t) return '—';
  return String(t).replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
}
