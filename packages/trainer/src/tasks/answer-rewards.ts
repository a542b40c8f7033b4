/*
 * Reward functions users of RL libraries expect on datasets with reference answers: exact match, a numeric
 * answer pulled out of free text (GSM8K's "#### 42", a LaTeX \boxed{42}, else the last number), and a
 * regular expression. Each returns 1 or 0.
 */

/** The final answer of a response: after "####", else inside the last \boxed{…}, else the last number. */
export function extractNumericAnswer(text: string): string | undefined {
  const marked = /####\s*([^\n]+)/.exec(text);
  const boxed = [...text.matchAll(/\\boxed\{([^{}]*)\}/g)].at(-1);
  const candidate = marked?.[1] ?? boxed?.[1] ?? text;
  const numbers = candidate.replace(/(\d),(?=\d{3}\b)/g, '$1').match(/-?\d+(?:\.\d+)?/g);
  return marked !== null || boxed !== undefined ? numbers?.[0] : numbers?.at(-1);
}

const sameNumber = (a: string, b: string) => {
  const x = Number(a);
  const y = Number(b);
  return Number.isFinite(x) && Number.isFinite(y) && Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(y));
};

/** 1 when the numbers extracted from `response` and from `answer` are equal. */
export function numericReward(response: string, answer: string): number {
  const got = extractNumericAnswer(response);
  const want = extractNumericAnswer(answer);
  return got !== undefined && want !== undefined && sameNumber(got, want) ? 1 : 0;
}

/** 1 when the response, trimmed, is the answer, trimmed. */
export function exactReward(response: string, answer: string): number {
  return response.trim() === answer.trim() ? 1 : 0;
}

/**
 * 1 when `pattern` matches the response and, if it has a capture group, the first group equals the answer
 * (trimmed); 0 otherwise.
 */
export function regexReward(pattern: RegExp, response: string, answer: string): number {
  const match = pattern.exec(response);
  if (match === null) return 0;
  return match.length > 1 ? (match[1]?.trim() === answer.trim() ? 1 : 0) : 1;
}
