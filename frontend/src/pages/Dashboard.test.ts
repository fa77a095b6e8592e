import { everyDay, importFileTypes } from "./Dashboard";

test("throughput over time fills the days without judgments with zeros", () => {
  const days = everyDay(
    [
      { day: "2026-11-26", judgments: 4 },
      { day: "2026-11-28", judgments: 2 },
    ],
    new Date("2026-11-29T10:00:00Z"),
  );
  expect(days).toEqual([
    { x: "2026-11-26", y: 4 },
    { x: "2026-11-27", y: 0 },
    { x: "2026-11-28", y: 2 },
    { x: "2026-11-29", y: 0 },
  ]);
  expect(everyDay([])).toEqual([]);
});

test("the import form takes a zip of images only in image projects", () => {
  expect(importFileTypes("text").accept).toBe(".jsonl,.csv,.parquet");
  expect(importFileTypes("text").help).toBeNull();
  expect(importFileTypes("image").accept.split(",")).toContain(".zip");
  expect(importFileTypes("image").help).toContain('"media"');
});
