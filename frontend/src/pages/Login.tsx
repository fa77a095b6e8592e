import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { api, describeError, type ApiError } from "../api/client";

export function Login() {
  const queryClient = useQueryClient();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    const result = await api.POST("/api/v1/auth/session/", { body: { username, password } });
    if (!result.response.ok) {
      setError(describeError(result.response.status, result.error as unknown as ApiError));
      return;
    }
    queryClient.setQueryData(["me"], result.data);
  };
  return (
    <main className="login">
      <h1>Tandem</h1>
      <form onSubmit={(e) => void onSubmit(e)} aria-label="Sign in">
        <label>
          Username
          <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} autoFocus required />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
        </label>
        <button type="submit">Sign in</button>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
