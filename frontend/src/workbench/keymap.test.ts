import { isTypingTarget, keyAction, type KeyContext, shortcuts } from "./keymap";

const pairwise: KeyContext = { arity: 2, allowTie: true, hasStrength: true, typing: false, pickingCategory: false, categoryCount: 3 };

test("digits choose candidates within the arity only", () => {
  expect(keyAction({ key: "1" }, pairwise)).toEqual({ type: "choose", position: 0 });
  expect(keyAction({ key: "2" }, pairwise)).toEqual({ type: "choose", position: 1 });
  expect(keyAction({ key: "3" }, pairwise)).toBeNull();
  expect(keyAction({ key: "4" }, { ...pairwise, arity: 4 })).toEqual({ type: "choose", position: 3 });
});

test("tie and strength keys act only when the project has them", () => {
  expect(keyAction({ key: "t" }, pairwise)).toEqual({ type: "tie" });
  expect(keyAction({ key: "T" }, pairwise)).toEqual({ type: "tie" });
  expect(keyAction({ key: "t" }, { ...pairwise, allowTie: false })).toBeNull();
  expect(keyAction({ key: "]" }, pairwise)).toEqual({ type: "strength", delta: 1 });
  expect(keyAction({ key: "[" }, pairwise)).toEqual({ type: "strength", delta: -1 });
  expect(keyAction({ key: "]" }, { ...pairwise, hasStrength: false })).toBeNull();
});

test("while typing, letters and digits type; Ctrl+Enter still submits and Esc leaves", () => {
  const typing = { ...pairwise, typing: true };
  expect(keyAction({ key: "1" }, typing)).toBeNull();
  expect(keyAction({ key: "s" }, typing)).toBeNull();
  expect(keyAction({ key: "Enter", ctrlKey: true }, typing)).toEqual({ type: "submit" });
  expect(keyAction({ key: "Enter", metaKey: true }, typing)).toEqual({ type: "submit" });
  expect(keyAction({ key: "Escape" }, typing)).toEqual({ type: "escape" });
  expect(keyAction({ key: "Enter" }, pairwise)).toBeNull(); // a bare Enter never submits
});

test("with a text selection waiting, digits pick span categories instead of candidates", () => {
  const picking = { ...pairwise, pickingCategory: true };
  expect(keyAction({ key: "1" }, picking)).toEqual({ type: "category", index: 0 });
  expect(keyAction({ key: "3" }, picking)).toEqual({ type: "category", index: 2 });
  expect(keyAction({ key: "4" }, picking)).toBeNull();
  expect(keyAction({ key: "t" }, picking)).toBeNull();
});

test("browser chords are left alone", () => {
  expect(keyAction({ key: "s", ctrlKey: true }, pairwise)).toBeNull();
  expect(keyAction({ key: "1", altKey: true }, pairwise)).toBeNull();
});

test("every key the handler acts on is listed in the help", () => {
  const listed = shortcuts(pairwise).map((s) => s.keys).join(" ");
  for (const key of ["1", "2", "T", "[", "]", "G", "/", "Ctrl+Enter", "S", "C", "M", "H", "?", "Esc"]) expect(listed).toContain(key);
  expect(shortcuts({ ...pairwise, allowTie: false }).map((s) => s.keys)).not.toContain("T");
});

test("with text selected outside the span picker, no letter or digit acts; Esc still does", () => {
  const selecting = { ...pairwise, selecting: true };
  for (const key of ["s", "S", "1", "2", "t", "]", "m", "h", "?", "/", "g", "c"]) expect(keyAction({ key }, selecting)).toBeNull();
  expect(keyAction({ key: "Escape" }, selecting)).toEqual({ type: "escape" });
  // A selection waiting for its category is the picker's: digits pick.
  expect(keyAction({ key: "1" }, { ...selecting, pickingCategory: true })).toEqual({ type: "category", index: 0 });
});

test("while a skip is being confirmed, only S (skip) and Esc (keep the task) act", () => {
  const confirming = { ...pairwise, confirmingSkip: true };
  expect(keyAction({ key: "s" }, confirming)).toEqual({ type: "skip" });
  expect(keyAction({ key: "S" }, confirming)).toEqual({ type: "skip" });
  expect(keyAction({ key: "Escape" }, confirming)).toEqual({ type: "escape" });
  for (const key of ["1", "2", "t", "]", "m"]) expect(keyAction({ key }, confirming)).toBeNull();
  expect(keyAction({ key: "Enter", ctrlKey: true }, confirming)).toBeNull(); // no submitting a task being skipped
  expect(keyAction({ key: "s", ctrlKey: true }, confirming)).toBeNull();
});

test("fields that take text or open a list keep their keys; radios and buttons leave them to the shortcuts", () => {
  const make = (html: string) => {
    const host = document.createElement("div");
    host.innerHTML = html;
    return host.firstElementChild;
  };
  for (const html of ["<textarea></textarea>", "<select></select>", "<input>", '<input type="text">', '<input type="number">', '<div role="combobox"></div>', '<div role="listbox"></div>'])
    expect(isTypingTarget(make(html))).toBe(true);
  const editable = make('<div contenteditable="true"></div>') as HTMLElement;
  Object.defineProperty(editable, "isContentEditable", { value: true }); // jsdom does not compute it
  expect(isTypingTarget(editable)).toBe(true);
  for (const html of ['<input type="radio">', '<input type="checkbox">', '<input type="range">', "<button></button>", "<div></div>"])
    expect(isTypingTarget(make(html))).toBe(false);
  expect(isTypingTarget(null)).toBe(false);
  expect(isTypingTarget(window)).toBe(false);
});
