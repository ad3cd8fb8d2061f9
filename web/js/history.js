// Generated images with the parameters that made them, newest first. Kept in this browser
// (localStorage) until the server's job list (GET /easel/v1/jobs) replaces this module's body; the
// interface is already asynchronous for that.
const KEY = "easel.history";

function load() {
  try { return JSON.parse(localStorage.getItem(KEY)) || []; } catch { return []; }
}

function save(entries) {
  // Images are data URIs: when the browser's quota is full, drop the oldest until they fit.
  while (entries.length) {
    try { localStorage.setItem(KEY, JSON.stringify(entries)); return; }
    catch { entries.pop(); }
  }
  localStorage.removeItem(KEY);
}

// entry: {image: URL, params: request fields, infotext: A1111 "parameters" text, time: ms}
export async function add(newEntries, limit = 200) {
  // (crypto.randomUUID exists only on https and localhost; the UI is also used over plain http.)
  const id = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const entries = [...newEntries.map((e) => ({ id: id(), ...e })), ...load()];
  save(entries.slice(0, limit));
}

// Entries whose prompt or parameters contain every word of query (case-insensitive).
export async function list(query = "") {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return load().filter((e) => {
    const text = `${e.infotext}`.toLowerCase();
    return words.every((w) => text.includes(w));
  });
}

export async function find(id) { return load().find((e) => e.id === id); }
export async function remove(id) { save(load().filter((e) => e.id !== id)); }
export async function clear() { localStorage.removeItem(KEY); }
