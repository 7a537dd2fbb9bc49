// PostgreSQL error codes the directory turns into client errors.
function codeOf(err: unknown): string {
  return typeof err === "object" && err !== null ? String((err as { code?: unknown }).code ?? "") : "";
}

export const isUniqueViolation = (err: unknown) => codeOf(err) === "23505";
export const isForeignKeyViolation = (err: unknown) => codeOf(err) === "23503";
/** Class 22 (data exception): a value PostgreSQL cannot store, such as a NUL in text. */
export const isDataException = (err: unknown) => codeOf(err).startsWith("22");
