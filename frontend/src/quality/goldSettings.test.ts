import { goldErrors, goldInputs, goldPatch } from "./goldSettings";

test("inputs show the stored settings, empty where a threshold is off", () => {
  const inputs = goldInputs({ gold_share: 0.1, gold_settings: { warn_below: 0.7, pause_below: null, min_gold: 10, show_own_accuracy: true } });
  expect(inputs).toEqual({ gold_share: "0.1", warn_below: "0.7", pause_below: "", min_gold: "10", promote_min_judgments: "", show_own_accuracy: true });
});

test("the patch turns numbers into numbers, an empty threshold into null (off) and leaves empty counts at their default", () => {
  const body = goldPatch({ gold_share: " 0.2 ", warn_below: "0.8", pause_below: "", min_gold: "", promote_min_judgments: "4", show_own_accuracy: false });
  expect(body).toEqual({ gold_share: 0.2, gold_settings: { warn_below: 0.8, pause_below: null, show_own_accuracy: false, promote_min_judgments: 4 } });
});

test("what is not a number goes as typed, for the server to name", () => {
  expect(goldPatch({ gold_share: "lots", warn_below: "high", pause_below: "", min_gold: "", promote_min_judgments: "", show_own_accuracy: false })).toMatchObject({
    gold_share: "lots",
    gold_settings: { warn_below: "high" },
  });
});

test("the server's complaints land on their inputs; others on the form", () => {
  expect(goldErrors({ gold_share: ["Too big."], "gold_settings.warn_below": ["Must be a gold accuracy."], gold_settings: ["Must be an object."] })).toEqual({
    gold_share: ["Too big."],
    warn_below: ["Must be a gold accuracy."],
    form: ["Must be an object."],
  });
});
