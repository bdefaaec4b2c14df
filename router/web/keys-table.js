// The list of keys: one table row per key, built with DOM calls only (no HTML strings).

import { limitsText, modelsText, stateOf, when } from "./format.js";

const ACTIONS = ["Edit", "Rotate", "Revoke"];

/** Replace the rows of `body` with `records`; `now` is unix seconds. */
export function renderKeys(body, records, now) {
  body.replaceChildren(...records.map((record) => row(record, now)));
}

function row(record, now) {
  const state = stateOf(record, now);
  const tr = element("tr", { "data-key-id": record.id, "data-state": state.toLowerCase() });
  tr.append(
    cell("Name", [record.name], "th"),
    cell("ID", [element("code", {}, record.id)]),
    cell("Created", [when(record.created_at, "")]),
    cell("Last used", [when(record.last_used_at, "Never")]),
    cell("Expires", [when(record.expires_at, "Never")]),
    cell("Models", [modelsText(record.models)]),
    cell("Limits", [limitsText(record.limits)]),
    cell("Priority", [record.priority ?? "default"]),
    cell("State", stateLines(record, state)),
    cell("Actions", state === "Revoked" ? [] : actions(record)),
  );
  return tr;
}

function stateLines(record, state) {
  const lines = [element("span", { class: `badge ${state.toLowerCase()}` }, state)];
  if (record.rotation_grace_until != null && state === "Active") {
    const until = when(record.rotation_grace_until, "");
    lines.push(element("span", { class: "note" }, `Old secret works until ${until}`));
  }
  return lines;
}

function actions(record) {
  return ACTIONS.map((verb) => {
    const button = element("button", {
      type: "button",
      class: verb === "Revoke" ? "small danger" : "small secondary",
      "data-action": verb.toLowerCase(),
      "data-key-id": record.id,
    });
    // The accessible name says which key: "Rotate key backend-team".
    button.append(verb, element("span", { class: "visually-hidden" }, ` key ${record.name}`));
    return button;
  });
}

// data-label names the column where a narrow screen shows each row as a card.
function cell(label, children, tag = "td") {
  const attributes = tag === "th" ? { scope: "row" } : {};
  return element(tag, { ...attributes, "data-label": label }, element("div", {}, ...children));
}

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}
