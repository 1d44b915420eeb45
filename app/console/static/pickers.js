// The account's names for pickers: tags, groups, segments, funnels, mailings, details,
// event types and rules, from the /v1 picker endpoints (type-ahead by prefix).
import { get, query } from "./api.js";

const lists = new Map();

// Lists that are read whole once per page load (refresh() forgets them).
function once(path) {
  if (!lists.has(path)) lists.set(path, get(path).catch((e) => (lists.delete(path), Promise.reject(e))));
  return lists.get(path);
}

export const refresh = () => lists.clear();

const byPrefix = (items, prefix, name) =>
  items.filter((i) => name(i).toLowerCase().startsWith(prefix.toLowerCase())).slice(0, 30);

const s = (n, one, many) => `${Number(n).toLocaleString("en-US")} ${n === 1 ? one : many}`;

export const pickers = {
  async tags(prefix) {
    const page = await get(`/v1/tags${query({ prefix, limit: 30 })}`);
    return page.tags.map((t) => ({ value: t.name, hint: s(t.contacts, "contact", "contacts") }));
  },
  async groups(prefix) {
    const groups = await once("/v1/groups");
    return byPrefix(groups, prefix, (g) => g.name).map((g) => ({
      value: g.name,
      hint: g.members == null ? "" : s(g.members, "member", "members"),
    }));
  },
  async segments(prefix) {
    const segments = await once("/v1/segments");
    return byPrefix(listOf(segments, "segments"), prefix, (g) => g.name).map((g) => ({ value: g.name }));
  },
  async details(prefix) {
    const page = await get(`/v1/details${query({ prefix, limit: 30 })}`);
    return listOf(page, "details").map((d) => ({ value: d.name, hint: s(d.contacts, "contact", "contacts") }));
  },
  async eventTypes(prefix) {
    const page = await get(`/v1/event-types${query({ prefix, limit: 30 })}`);
    return listOf(page, "event_types").map((d) => ({ value: d.type, hint: s(d.events, "event", "events") }));
  },
  async owners(prefix) {
    const page = await get(`/v1/owners${query({ prefix, limit: 30 })}`);
    return listOf(page, "owners").map((d) => ({ value: d.email, hint: s(d.contacts, "contact", "contacts") }));
  },
  funnels: async () => listOf(await once("/v1/funnels"), "funnels"),
  mailings: async () => listOf(await once("/v1/mailings"), "mailings"),
  segmentList: async () => listOf(await once("/v1/segments"), "segments"),
  rules: async () => listOf(await once("/v1/rules"), "rules"),
};

// A list answer, bare or wrapped in a page object.
export function listOf(answer, key) {
  if (Array.isArray(answer)) return answer;
  if (answer && Array.isArray(answer[key])) return answer[key];
  const found = answer && Object.values(answer).find(Array.isArray);
  return found || [];
}

export const stageName = (stage) => (typeof stage === "string" ? stage : stage.name);
export const stageHint = (stage) => (typeof stage === "string" || stage.contacts == null ? "" : ` (${stage.contacts})`);
